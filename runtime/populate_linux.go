package runtime

import (
	"os"
	"syscall"
	"unsafe"
)

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14), which package
// syscall does not name.
const madvPopulateRead = 22

// Populate maps the n bytes at p, memory of a file mapping such as a weight
// used in place (see ViewWeight), into the process's page tables now, as
// reading them would, so that the first step of a program does not take
// the page faults. It is only advice: older kernels ignore it.
func Populate(p unsafe.Pointer, n int) {
	if n <= 0 {
		return
	}
	page := os.Getpagesize()
	off := int(uintptr(p) % uintptr(page))
	start := unsafe.Add(p, -off) // still inside the mapping, which is page-aligned
	_ = syscall.Madvise(unsafe.Slice((*byte)(start), off+n), madvPopulateRead)
}
