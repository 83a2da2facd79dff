//go:build unix && !linux

package safetensors

func adviseHuge([]byte) {}
