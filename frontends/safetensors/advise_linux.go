package safetensors

import "syscall"

// adviseHuge asks for transparent huge pages on a file mapping: where the
// file system keeps the file's page cache in huge folios (ext4 and xfs on
// recent kernels, when read ahead for a mapping so advised), they are
// mapped whole, which misses the TLB far less when the weights are
// streamed. It is only advice.
func adviseHuge(b []byte) { _ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) }
