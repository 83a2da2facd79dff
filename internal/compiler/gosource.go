package compiler

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/llmc-dev/llmc/artifact"
)

// EnvSource names an llmc checkout that generated Go code is built
// against, instead of the sources llmc finds itself.
const EnvSource = "LLMC_SOURCE"

// sourceHint ends the errors of a source that cannot be used.
const sourceHint = "set " + EnvSource + " to an llmc checkout"

// goSource returns the folder holding the llmc module that generated Go
// code builds against, and where it came from: $LLMC_SOURCE if set; else
// the checkout this binary was built from, if it is still there (not for
// an installed llmc whose checkout moved, nor a -trimpath build); else
// embedded (see Options.Source), unpacked into the user's cache folder.
func goSource(embedded fs.FS) (dir, origin string, err error) {
	if dir := os.Getenv(EnvSource); dir != "" {
		dir, err := checkSource(dir)
		if err != nil {
			return "", "", fmt.Errorf("$%s: %w", EnvSource, err)
		}
		return dir, "$" + EnvSource, nil
	}
	built := buildTree()
	if built != "" {
		if dir, err := checkSource(built); err == nil {
			return dir, "the checkout llmc was built from", nil
		}
	}
	if embedded == nil {
		if built == "" {
			return "", "", fmt.Errorf("this llmc was built without its source paths (-trimpath) and without the embedded sources; %s", sourceHint)
		}
		return "", "", fmt.Errorf("the checkout llmc was built from, %s, is gone; %s", built, sourceHint)
	}
	dir, err = unpackSource(embedded)
	if err != nil {
		return "", "", err
	}
	return dir, "the sources embedded in llmc", nil
}

// buildTree returns the module root this binary was compiled from, or ""
// when the build recorded no absolute paths (-trimpath).
func buildTree() string {
	_, file, _, ok := goruntime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func checkSource(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(data, []byte("module "+modulePath+"\n")) {
		return "", fmt.Errorf("%s is not an llmc source tree (the Go backend builds generated code against it); %s", dir, sourceHint)
	}
	return filepath.Abs(dir)
}

// unpackSource writes the files of src into <user cache>/llmc/source/HASH,
// named after their content so that one llmc version unpacks them once
// and the Go build cache keeps serving the same folder. The folder appears
// complete or not at all: it is filled under a temporary name first.
func unpackSource(src fs.FS) (string, error) {
	sum, err := hashFS(src)
	if err != nil {
		return "", fmt.Errorf("reading the embedded llmc sources: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no folder to unpack the embedded llmc sources into (%v); %s", err, sourceHint)
	}
	dir := filepath.Join(cache, "llmc", "source", sum[:16])
	if _, err := checkSource(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("unpacking the embedded llmc sources: %w", err)
	}
	tmp, err := artifact.TempDir(dir)
	if err != nil {
		return "", fmt.Errorf("unpacking the embedded llmc sources: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename, unless that failed
	if err := os.CopyFS(tmp, src); err != nil {
		return "", fmt.Errorf("unpacking the embedded llmc sources into %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another llmc may have unpacked the same sources meanwhile.
		if _, checkErr := checkSource(dir); checkErr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("unpacking the embedded llmc sources: %w", err)
	}
	return dir, nil
}

// hashFS hashes the names and contents of the files in fsys.
func hashFS(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	if _, err := fs.Stat(fsys, "go.mod"); err != nil {
		return "", errors.New("no go.mod among them")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
