//go:build !linux

package artifact

import (
	"os"
	"time"
)

// identity is not known here: every start hashes the model files.
func identity(os.FileInfo) (dev, ino uint64, ctime time.Time, ok bool) {
	return 0, 0, time.Time{}, false
}
