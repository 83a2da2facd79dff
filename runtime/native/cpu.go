package native

import (
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
)

// isaFeatures are the CPU features, as Linux's /proc/cpuinfo names them,
// that code compiled with llc -mcpu=native may use, per architecture.
// An artifact records those of the machine that compiled it, and runs only
// where all of them are present.
var isaFeatures = map[string][]string{
	"amd64": {"sse3", "pni", "ssse3", "sse4_1", "sse4_2", "sse4a", "popcnt", "abm", "movbe", "aes", "pclmulqdq",
		"avx", "f16c", "fma", "fma4", "bmi1", "bmi2", "adx", "sha_ni", "avx2", "avx_vnni", "gfni", "vaes", "vpclmulqdq",
		"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512ifma", "avx512vbmi", "avx512_vbmi2",
		"avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"},
	"arm64": {"fp", "asimd", "fphp", "asimdhp", "asimddp", "asimdfhm", "atomics", "sve", "sve2", "i8mm", "bf16", "svei8mm", "svebf16"},
}

// cpuinfo is read by HostFeatures; tests replace it.
var cpuinfo = "/proc/cpuinfo"

// HostFeatures returns this machine's CPU feature flags (Linux:
// /proc/cpuinfo's flags or Features line).
func HostFeatures() (map[string]bool, error) {
	data, err := os.ReadFile(cpuinfo)
	if err != nil {
		return nil, fmt.Errorf("reading this machine's CPU features: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if k := strings.TrimSpace(key); k == "flags" || k == "Features" {
			flags := map[string]bool{}
			for _, f := range strings.Fields(val) {
				flags[f] = true
			}
			return flags, nil
		}
	}
	return nil, fmt.Errorf("reading this machine's CPU features: %s has no flags line", cpuinfo)
}

// TargetFeatures lists the ISA features of this machine that native code
// compiled for it may use, for an artifact's manifest. It is empty where
// the features cannot be read (then CheckCPU has nothing to check).
func TargetFeatures() []string {
	host, err := HostFeatures()
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range isaFeatures[goruntime.GOARCH] {
		if host[f] {
			out = append(out, f)
		}
	}
	return out
}

// CapFeatures drops from features those above instruction set limit
// (runtime's names: "avx2" drops AVX-512, AMX and AVX-VNNI, "scalar" AVX2
// and FMA too), as code compiled with llvm.MAttrFor(limit) leaves them
// unused; any other limit drops nothing.
func CapFeatures(features []string, limit string) []string {
	drop := func(f string) bool {
		wide := strings.HasPrefix(f, "avx512") || strings.HasPrefix(f, "amx") || f == "avx_vnni"
		switch limit {
		case "avx2":
			return wide
		case "scalar":
			return wide || f == "avx2" || f == "fma" || f == "fma4"
		}
		return false
	}
	var out []string
	for _, f := range features {
		if !drop(f) {
			out = append(out, f)
		}
	}
	return out
}

// CPUError says that this machine lacks CPU features an artifact's code
// was compiled for.
type CPUError struct {
	CPU     string   // the CPU the artifact was compiled for
	Missing []string // features it needs that this machine lacks
}

func (e *CPUError) Error() string {
	return fmt.Sprintf("the artifact's native code was compiled for CPU %s with %s, which this machine lacks: it would stop with an illegal instruction; compile the model again on this machine (llmc compile --backend llvm)",
		e.CPU, strings.Join(e.Missing, ", "))
}

// CheckCPU checks that this machine has every feature of features, which
// code compiled for cpu may use.
func CheckCPU(cpu string, features []string) error {
	if len(features) == 0 {
		return nil
	}
	host, err := HostFeatures()
	if err != nil {
		return fmt.Errorf("the artifact's native code needs CPU features %s: %w", strings.Join(features, ", "), err)
	}
	var missing []string
	for _, f := range features {
		if !host[f] && !slices.Contains(missing, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return &CPUError{CPU: cpu, Missing: missing}
	}
	return nil
}

// HostModel names this machine's CPU as Linux's /proc/cpuinfo does
// ("model name"; on arm64, the implementer and part numbers), with its
// logical CPU count, or says it is unknown.
func HostModel() string {
	n := goruntime.NumCPU()
	data, err := os.ReadFile(cpuinfo)
	if err == nil {
		var impl, part string
		for _, line := range strings.Split(string(data), "\n") {
			key, val, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(key) {
			case "model name":
				return fmt.Sprintf("%s, %d logical CPUs", strings.TrimSpace(val), n)
			case "CPU implementer":
				impl = strings.TrimSpace(val)
			case "CPU part":
				part = strings.TrimSpace(val)
			}
		}
		if impl != "" {
			return fmt.Sprintf("implementer %s part %s, %d logical CPUs", impl, part, n)
		}
	}
	return fmt.Sprintf("unknown CPU (%s/%s), %d logical CPUs", goruntime.GOOS, goruntime.GOARCH, n)
}
