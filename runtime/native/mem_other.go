//go:build (darwin || freebsd) && !linux

package native

func adviseHugePages([]byte) {}
