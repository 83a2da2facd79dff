package native

import "syscall"

// adviseHugePages asks for transparent huge pages on the weights, which a
// decode step streams in full: fewer TLB misses. It is only advice.
func adviseHugePages(b []byte) { _ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) }
