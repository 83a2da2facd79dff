//go:build unix

package safetensors

import (
	"fmt"
	"math"
	"os"
	"syscall"
	"unsafe"
)

// mapFile maps the file at path read-only and returns its bytes and a
// function that unmaps them. The mapping is advised to be backed by huge
// pages where the page cache has them (see adviseHuge): a model's weights
// are read in place from it, a decode step streaming them all.
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := fi.Size()
	if size == 0 {
		// mmap rejects empty mappings; parse reports the short file.
		return []byte{}, func() error { return nil }, nil
	}
	if size > math.MaxInt {
		return nil, nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	adviseHuge(data)
	return data, func() error { return syscall.Munmap(data) }, nil
}

// pageSize is the size of the pages releasePages drops.
var pageSize = uintptr(os.Getpagesize())

// releasePages drops the whole pages inside b from the process's resident
// set (MADV_DONTNEED on a shared read-only file mapping: the page cache
// keeps them, and a later read faults them back in). Only advice.
func releasePages(b []byte) {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := (start + pageSize - 1) &^ (pageSize - 1)
	hi := (start + uintptr(len(b))) &^ (pageSize - 1)
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(b[lo-start:hi-start], syscall.MADV_DONTNEED)
}
