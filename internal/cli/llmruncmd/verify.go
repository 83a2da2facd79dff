package llmruncmd

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/engine"
)

// errVerify is returned by verify when something differs; the report
// already names what.
var errVerify = errors.New("the artifact does not match what was compiled")

func verifyCommand(stdout io.Writer) *cmdline.Command {
	return &cmdline.Command{
		Name: "verify", Args: "ART",
		Short: "Hash every file an artifact depends on and report what differs.",
		Summary: `Check an artifact in full: the manifest's checksum, the SHA-256 of every
file it holds and of every model file it was compiled from, and what of
running it can be told without loading it (a backend this llmrun knows, a
Go artifact's binary executable).

Loading an artifact checks its manifest every time, but trusts a file (its
own or the model's) whose identity (device, inode, size, mtime and ctime)
is as recorded without reading it. verify reads everything. It prints one
line per check and exits 1 when any fails.`,
		Examples: []string{"llmrun verify ~/tinyllama.llmc"},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			return func(pos []string) error {
				dir, err := cmdline.OnePositional(pos, "ART")
				if err != nil {
					return err
				}
				if !artifact.IsArtifact(dir) {
					return fmt.Errorf("%s has no %s: not an llmc artifact", dir, artifact.ManifestName)
				}
				checks, err := engine.Verify(dir)
				if err != nil {
					return err
				}
				bad := 0
				for _, c := range checks {
					if c.Err != nil {
						bad++
						fmt.Fprintf(stdout, "FAIL  %s: %v\n", c.What, c.Err)
					} else {
						fmt.Fprintf(stdout, "ok    %s\n", c.What)
					}
				}
				if bad > 0 {
					return fmt.Errorf("%w: %d of %d checks failed", errVerify, bad, len(checks))
				}
				return nil
			}
		},
	}
}
