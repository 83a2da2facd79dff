//go:build !unix

package safetensors

import "os"

// mapFile reads the file at path into memory. This fallback serves
// platforms without syscall.Mmap; the result behaves like a mapping that
// Close forgets.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}

// releasePages does nothing: the data is not a mapping.
func releasePages([]byte) {}
