package artifact

import (
	"os"
	"syscall"
	"time"
)

// identity is what the file system says about a file besides its bytes:
// device, inode and change time. Rewriting a file's bytes changes its
// ctime even when its size and mtime are put back, and ctime cannot be set
// from user space; a copy has another inode.
func identity(st os.FileInfo) (dev, ino uint64, ctime time.Time, ok bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, time.Time{}, false
	}
	return uint64(s.Dev), s.Ino, time.Unix(s.Ctim.Sec, s.Ctim.Nsec).UTC(), true
}
