package safetensors

import (
	"fmt"
	"strings"
)

// A FormatError reports a file, or one tensor in it, that does not follow the
// safetensors format. Callers can tell it apart from I/O errors with
// errors.As.
type FormatError struct {
	File   string // path of the file, if known
	Tensor string // name of the tensor at fault, or "" for the whole file
	Err    error  // what is wrong
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }

// formatErrorf returns a *FormatError for file and tensor with a message
// formatted as by fmt.Errorf (so %w works).
func formatErrorf(file, tensor, format string, args ...any) error {
	return &FormatError{File: file, Tensor: tensor, Err: fmt.Errorf(format, args...)}
}
