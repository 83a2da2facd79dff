package cmdline

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// commands are the program's commands and the version command every
// program has.
func (p *Program) commands(stdout io.Writer) []*Command {
	for _, c := range p.Commands {
		if c.Name == "version" {
			return p.Commands
		}
	}
	return append(p.Commands[:len(p.Commands):len(p.Commands)], versionCommand(p.Name, stdout))
}

func versionCommand(prog string, stdout io.Writer) *Command {
	return &Command{
		Name:     "version",
		Short:    "Print the version and VCS revision of this build.",
		Summary:  "Print the version of this build: the module version, the VCS revision it was built from and the Go version (also " + prog + " --version).",
		Examples: []string{prog + " version"},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			return func(pos []string) error {
				if len(pos) > 0 {
					return Usagef("version takes no arguments, got %s", strings.Join(pos, " "))
				}
				bi, _ := debug.ReadBuildInfo()
				_, err := fmt.Fprintln(stdout, VersionLine(prog, bi))
				return err
			}
		},
	}
}

// VersionLine is the line the version command prints, from bi (which may
// be nil): the program, the main module's version, the VCS settings the
// go command stamped into the binary and the Go version, as in
// "llmc (devel) vcs.revision=abc123 vcs.time=2025-01-02T03:04:05Z
// vcs.modified=false go1.26.8 linux/amd64".
func VersionLine(prog string, bi *debug.BuildInfo) string {
	version, goVersion := "(devel)", runtime.Version()
	var vcs []string
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, key := range []string{"vcs.revision", "vcs.time", "vcs.modified"} {
			for _, s := range bi.Settings {
				if s.Key == key && s.Value != "" {
					vcs = append(vcs, key+"="+s.Value)
				}
			}
		}
	}
	fields := append([]string{prog, version}, vcs...)
	return strings.Join(append(fields, goVersion, runtime.GOOS+"/"+runtime.GOARCH), " ")
}
