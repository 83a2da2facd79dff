// Package artifact defines the folder llmc compile writes and llmrun
// loads: a manifest, the optimised IR and copies of the model's small
// files (config, tokenizer). Weights stay in the model folder; the
// manifest records their sizes and content hashes so a changed model is
// caught before it runs.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Format and Version identify the manifest layout. Version changes whenever
// an older llmrun could not run a newer artifact correctly.
const (
	Format       = "llmc-artifact"
	Version      = 1
	ManifestName = "manifest.json"
	IRName       = "program.ir"
)

// Manifest describes a compiled artifact.
type Manifest struct {
	Format       string    `json:"format"`
	Version      int       `json:"version"`
	Created      time.Time `json:"created"`
	Model        Model     `json:"model"`
	KV           string    `json:"kv"` // "static" or "dynamic"
	MaxSeq       int       `json:"max_seq"`
	PrefillChunk int       `json:"prefill_chunk,omitempty"`
	Backend      string    `json:"backend"`
	// BuildID identifies this compilation; generated code carries it, so
	// a binary from another compilation is refused.
	BuildID    string        `json:"build_id"`
	Entries    []Entry       `json:"entries"`
	Kernels    []Kernel      `json:"kernels"`
	BufferPlan []EntryPlan   `json:"buffer_plan"`
	Weights    []string      `json:"weights"`
	Derived    []DerivedInfo `json:"derived_weights,omitempty"`
	IR         string        `json:"ir"`
	Files      []string      `json:"files"` // other files in the artifact, relative
	Backends   BackendInfo   `json:"backend_info,omitempty"`
}

// BackendInfo records what a code generator produced and with what tools.
type BackendInfo struct {
	TargetCPU string            `json:"target_cpu,omitempty"`
	Tools     map[string]string `json:"tools,omitempty"`
	Binary    string            `json:"binary,omitempty"`
	Library   string            `json:"library,omitempty"`
	Features  []string          `json:"cpu_features,omitempty"`
}

// Model identifies the model folder an artifact was compiled from.
type Model struct {
	Dir          string `json:"dir"` // absolute
	Architecture string `json:"architecture"`
	Files        []File `json:"files"`
}

// File is one model file and its content.
type File struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
}

// Entry is one entry point of the program.
type Entry struct {
	Name   string `json:"name"`
	Seq    int    `json:"seq"`    // tokens per call; 0 for any number (dynamic cache)
	Logits string `json:"logits"` // "last" or "all"
}

// Kernel lists one kernel of an entry point.
type Kernel struct {
	Entry string   `json:"entry"`
	Value string   `json:"value"`
	Kind  string   `json:"kind"`
	Ops   []string `json:"ops"`
}

// EntryPlan is the arena layout of one entry point.
type EntryPlan struct {
	Entry      string   `json:"entry"`
	ArenaBytes int      `json:"arena_bytes"`
	Buffers    []Buffer `json:"buffers"`
}

// Buffer is one planned intermediate result.
type Buffer struct {
	Value  string `json:"value"`
	Offset int    `json:"offset"`
	Bytes  int    `json:"bytes"`
}

// DerivedInfo is a weight built at load time from checkpoint weights.
type DerivedInfo struct {
	Name string   `json:"name"`
	Op   string   `json:"op"`
	Args []string `json:"args"`
}

// IsArtifact reports whether dir holds a manifest.
func IsArtifact(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestName))
	return err == nil
}

// ErrVersion is returned for artifacts of another format version.
var ErrVersion = errors.New("artifact format version mismatch")

// Read reads and checks dir's manifest.
func Read(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading artifact: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format is %q, not %q: not an llmc artifact", path, m.Format, Format)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("%s: %w: the artifact is version %d, this llmrun reads version %d; compile it again with this llmc",
			path, ErrVersion, m.Version, Version)
	}
	if m.KV != "static" && m.KV != "dynamic" {
		return nil, fmt.Errorf("%s: kv is %q, want static or dynamic", path, m.KV)
	}
	if len(m.Entries) == 0 || m.IR == "" {
		return nil, fmt.Errorf("%s: no entry points", path)
	}
	return &m, nil
}

// DescribeFile records a model file's size, time and content hash.
func DescribeFile(dir, name string, progress func(done, total int64)) (File, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	sum, err := hashReader(f, st.Size(), progress)
	if err != nil {
		return File{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return File{Name: name, Size: st.Size(), ModTime: st.ModTime().UTC(), SHA256: sum}, nil
}

func hashReader(r io.Reader, total int64, progress func(done, total int64)) (string, error) {
	h := sha256.New()
	buf := make([]byte, 4<<20)
	var done int64
	for {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		done += int64(n)
		if progress != nil {
			progress(done, total)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckModel verifies that the model files are those the artifact was
// compiled from. A file whose size and modification time are unchanged is
// trusted; otherwise its content hash decides.
func (m *Manifest) CheckModel() error {
	for _, f := range m.Model.Files {
		path := filepath.Join(m.Model.Dir, f.Name)
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("the artifact was compiled from %s: %w", path, err)
		}
		if st.Size() != f.Size {
			return fmt.Errorf("model file %s changed since it was compiled (size %d, was %d): compile again", path, st.Size(), f.Size)
		}
		if st.ModTime().UTC().Equal(f.ModTime) {
			continue
		}
		cur, err := DescribeFile(m.Model.Dir, f.Name, nil)
		if err != nil {
			return err
		}
		if cur.SHA256 != f.SHA256 {
			return fmt.Errorf("model file %s changed since it was compiled (sha256 %.12s…, was %.12s…): compile again", path, cur.SHA256, f.SHA256)
		}
	}
	return nil
}

// WriteDir writes an artifact atomically: fill is called with a fresh
// temporary folder next to dir, which then replaces dir. On error nothing
// at dir changes and the temporary folder is removed.
//
// The temporary folder comes from TempDir: named after this process, so
// that one left by a process killed before it could clean up (SIGKILL, a
// crash) is removed by the next WriteDir to dir.
func WriteDir(dir string, fill func(tmp string) error) (err error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := TempDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err = fill(tmp); err != nil {
		return err
	}
	if st, statErr := os.Stat(dir); statErr == nil {
		if !st.IsDir() || !IsArtifact(dir) {
			return fmt.Errorf("%s exists and is not an llmc artifact; not replacing it", dir)
		}
		old := tmp + ".old"
		if err = os.Rename(dir, old); err != nil {
			return err
		}
		if err = os.Rename(tmp, dir); err != nil {
			os.Rename(old, dir)
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}

// WriteJSON writes v as indented JSON to path.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// TempDir creates a temporary folder for what will be renamed to dir,
// next to it and named .BASE.tmpPID-N, after sweeping the ones of dir
// left by dead processes (see SweepStale). dir's parent must exist.
func TempDir(dir string) (string, error) {
	if _, err := SweepStale(dir); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), tempPrefix(dir)+strconv.Itoa(os.Getpid())+"-*")
}

// tempPrefix is the start of the names of dir's temporary folders.
func tempPrefix(dir string) string {
	return "." + filepath.Base(filepath.Clean(dir)) + ".tmp"
}

// SweepStale removes the temporary folders that WriteDir calls for dir
// left behind when their process died, and returns their paths. A folder
// is stale when the process id in its name (.BASE.tmpPID-N, or
// .BASE.tmpPID-N.old while an artifact is replaced) is no longer running;
// folders of running processes, including this one, and folders not named
// that way are kept.
func SweepStale(dir string) ([]string, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	prefix := tempPrefix(dir)
	ents, err := os.ReadDir(parent)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("looking for unfinished artifacts in %s: %w", parent, err)
	}
	var swept []string
	for _, e := range ents {
		pid, ok := tempOwner(e.Name(), prefix)
		if !ok || !e.IsDir() || processAlive(pid) {
			continue
		}
		path := filepath.Join(parent, e.Name())
		if err := os.RemoveAll(path); err != nil {
			return swept, fmt.Errorf("removing %s, left by llmc process %d, which is gone: %w", path, pid, err)
		}
		swept = append(swept, path)
	}
	return swept, nil
}

// tempOwner parses the process id out of a temporary folder's name.
func tempOwner(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	id, suffix, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	suffix = strings.TrimSuffix(suffix, ".old")
	if _, err := strconv.ParseUint(suffix, 10, 64); err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(id)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}
