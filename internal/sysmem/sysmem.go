// Package sysmem tells how much memory this machine (or the cgroup the
// process runs in) has, so that a plan needing more is refused up front
// instead of dying of "out of memory" half way through.
package sysmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Total returns the memory this process may use in bytes: the machine's
// MemTotal, or the cgroup's limit when that is lower. ok is false where
// neither can be read (not Linux); callers then skip their check.
func Total() (bytes int64, ok bool) {
	return total("/proc/meminfo", "/sys/fs/cgroup/memory.max")
}

func total(meminfo, cgroupMax string) (int64, bool) {
	n, ok := memTotal(meminfo)
	if lim, lok := cgroupLimit(cgroupMax); lok && (!ok || lim < n) {
		n, ok = lim, true
	}
	return n, ok
}

// memTotal reads "MemTotal: N kB" from a meminfo file.
func memTotal(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !found {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// cgroupLimit reads a cgroup v2 memory.max file ("max" means no limit).
func cgroupLimit(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := string(bytes.TrimSpace(data))
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Check refuses a plan that needs more than the memory this process may
// use. what names the plan ("the static KV cache for 131072 positions"),
// hint says how to shrink it ("pass a smaller --max-seq").
func Check(need int64, what, hint string) error {
	have, ok := Total()
	if !ok || need <= have {
		return nil
	}
	return &TooBigError{Need: need, Have: have, What: what, Hint: hint}
}

// TooBigError is a plan that does not fit in memory.
type TooBigError struct {
	Need, Have int64
	What, Hint string
}

func (e *TooBigError) Error() string {
	return fmt.Sprintf("%s needs %s (%d bytes), more than the %s this machine has: %s",
		e.What, Human(e.Need), e.Need, Human(e.Have), e.Hint)
}

// Human prints a byte count with a binary unit.
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for f >= unit && i < len(suffix)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.2f %s", f, suffix[i])
}
