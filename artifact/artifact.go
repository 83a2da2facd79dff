// Package artifact is the contract between llmc, which compiles a model,
// and what runs the result (llmrun, an artifact's own executable, the
// shared-object loader): the folder llmc compile writes, what a program
// compiled into it looks like from outside, and nothing that either side
// computes. It imports only the standard library, so both sides import it
// without linking the other.
//
//   - The manifest (this file): a manifest, the optimised IR and copies of
//     the model's small files (config, tokenizer); weights stay in the
//     model folder.
//   - Entry points and backends (entry.go): the names of compiled entry
//     points and of the backends a manifest records.
//   - Weights and states (weight.go): the one description of a weight a
//     compiled program reads, used by the kernel IR, the generated Go
//     program, the native layout and the runtime that gathers weights.
//   - The native ABI (abi.go, layout.go): the symbols and context block of a
//     shared object built by the LLVM backend, and its layout.json.
//
// What a load checks: the manifest's own checksum (an edited manifest is
// refused; one with optional fields a newer llmc added is read), and for
// every file the artifact holds and every model file its identity
// (device, inode, size, mtime, ctime): when all are as recorded the file
// is trusted without reading it, else its SHA-256 decides. Verify hashes
// everything, whatever the identity.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmc-dev/llmc/wformat"
)

// Format and Version identify the manifest layout. Version changes whenever
// an older llmrun could not run a newer artifact correctly.
//
// An artifact whose static KV cache is stored in 16 bits (KVDtype f16 or
// bf16) is version VersionKV16: an llmrun that reads only version 2 would
// size its cache as float32 (the Go backend's executable allocates its own,
// but the memory checks and figures would be wrong) and refuses it. One with
// a float32 cache is still version 2, so artifacts compiled before stay
// readable and those compiled now run on an older llmrun.
const (
	Format       = "llmc-artifact"
	Version      = 2
	VersionKV16  = 3
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
	// Slots is how many sequences the static KV cache holds, each with
	// MaxSeq positions of its own (0 or 1: one); with more than one, the
	// EntryDecodeBatch entry point steps them together.
	Slots int `json:"slots,omitempty"`
	// KVDtype is how the static KV cache stores its elements (llmc compile
	// --kv-dtype): f32 (left out of the JSON), f16 or bf16.
	KVDtype wformat.Format `json:"kv_dtype,omitempty"`
	Backend string         `json:"backend"`
	// BuildID identifies this compilation; generated code carries it, so
	// a binary from another compilation is refused.
	BuildID    string        `json:"build_id"`
	Entries    []Entry       `json:"entries"`
	Kernels    []Kernel      `json:"kernels"`
	BufferPlan []EntryPlan   `json:"buffer_plan"`
	Weights    []string      `json:"weights"`
	Derived    []DerivedInfo `json:"derived_weights,omitempty"`
	// ProgramWeights are the weights a compiled program (backends go and
	// llvm) reads, as it stores them: which it keeps in bfloat16, say.
	ProgramWeights []Weight `json:"program_weights,omitempty"`
	// StoredWeights index the checkpoint tensors the artifact stores
	// itself, transformed (quantized), in StoredWeightsName; the run side
	// reads those from there instead of the model folder.
	StoredWeights []StoredTensor `json:"stored_weights,omitempty"`
	IR            string         `json:"ir"`
	Files         []string       `json:"files"` // other files in the artifact, relative
	Backends      BackendInfo    `json:"backend_info,omitempty"`
	// Contents are the size, hash and identity of every file in the
	// artifact but the manifest, sorted by name.
	Contents []File `json:"contents"`
	// Checksum is the SHA-256 of the manifest as written with Checksum
	// empty; see Seal.
	Checksum string `json:"checksum"`
}

// BackendInfo records what a code generator produced and with what tools.
type BackendInfo struct {
	TargetCPU string            `json:"target_cpu,omitempty"`
	Tools     map[string]string `json:"tools,omitempty"`
	Binary    string            `json:"binary,omitempty"`
	Library   string            `json:"library,omitempty"`
	Features  []string          `json:"cpu_features,omitempty"`
	// IntDot is the form the native code's int8 dot products (Q8_0
	// linears) take: vnni, avx2 or portable; "" when it has none.
	IntDot string `json:"int_dot,omitempty"`
	// ISA is the widest vector instruction set the native code was
	// compiled for: avx512, avx2 or scalar (LLMC_ISA caps it); "" in
	// artifacts from before it was recorded.
	ISA string `json:"isa,omitempty"`
	// Lanes is how many f32 lanes the float linears' dot products (and
	// attention's value sums) take: 16 where the code uses AVX-512
	// registers for them (kir.Options.Wide); 0 means 8.
	Lanes int `json:"lanes,omitempty"`
	// BF16Dot says the prefill tiles of bf16 linears take AVX-512 BF16's
	// vdpbf16ps, on an input rounded to bfloat16 (kir.Options.BF16Dot).
	BF16Dot bool `json:"bf16_dot,omitempty"`
}

// Model identifies the model folder an artifact was compiled from.
type Model struct {
	Dir          string `json:"dir"` // absolute
	Architecture string `json:"architecture"`
	Files        []File `json:"files"`
}

// File is one model file, or one file of the artifact (Contents): its
// content hash and, for a fast check at load, its identity when it was
// hashed.
type File struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime,omitzero"`
	SHA256  string    `json:"sha256"`
	// Device, Inode and ChangeTime are zero where the system does not
	// report them; the file is then hashed at every load.
	Device     uint64    `json:"device,omitempty"`
	Inode      uint64    `json:"inode,omitempty"`
	ChangeTime time.Time `json:"ctime,omitzero"`
}

// Entry is one entry point of the program.
type Entry struct {
	Name   string `json:"name"`
	Seq    int    `json:"seq"`    // tokens per call; 0 for any number (dynamic cache)
	Logits string `json:"logits"` // "last", "all", or "runs": the last row of each run of one sequence (EntryPrefillBatch)
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

// ownFiles are files that only an artifact holds (its program, emitted
// extras, executable, generated source, shared object), whatever its
// backend; a model folder has none of them.
var ownFiles = []string{IRName, StoredWeightsName, "program.kir", "program.dot", "bin/llmc-model", "gosrc", "model.so", "model.ll"}

// OwnFile returns a file of dir that only an llmc artifact has, to tell an
// artifact that lost its manifest from a model folder.
func OwnFile(dir string) (string, bool) {
	for _, name := range ownFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return name, true
		}
	}
	return "", false
}

// VersionFor is the manifest version of an artifact whose KV cache is
// stored in kv: VersionKV16 for f16 and bf16, else Version.
func VersionFor(kv wformat.Format) int {
	if kv != wformat.F32 {
		return VersionKV16
	}
	return Version
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
	if m.Version != Version && m.Version != VersionKV16 {
		return nil, fmt.Errorf("%s: %w: the artifact is version %d, this llmrun reads versions %d and %d; compile it again with this llmc",
			path, ErrVersion, m.Version, Version, VersionKV16)
	}
	if !slices.Contains(wformat.KVFormats, m.KVDtype) {
		return nil, fmt.Errorf("%s: kv_dtype is %s, want f32, f16 or bf16", path, m.KVDtype)
	}
	if want := VersionFor(m.KVDtype); m.Version != want {
		return nil, fmt.Errorf("%s: a KV cache stored as %s is recorded at version %d, not %d: the manifest is damaged; compile the artifact again", path, m.KVDtype, m.Version, want)
	}
	if m.KV != "static" && m.KV != "dynamic" {
		return nil, fmt.Errorf("%s: kv is %q, want static or dynamic", path, m.KV)
	}
	if len(m.Entries) == 0 || m.IR == "" {
		return nil, fmt.Errorf("%s: no entry points", path)
	}
	sum, err := m.checksum()
	if err != nil {
		return nil, err
	}
	// The bytes as sealed, or (formatting aside) what they mean; a field
	// this llmc does not know is covered only by the bytes.
	if m.Checksum == "" {
		return nil, fmt.Errorf("%s has no checksum: it was edited after llmc wrote it; compile the artifact again", path)
	}
	if rawChecksum(data, m.Checksum) != m.Checksum {
		if f := unknownField(data); f != "" {
			return nil, fmt.Errorf("%s does not match its checksum, and it has a field this llmrun does not know (%s): it was edited, or a newer llmc wrote it in a way this llmrun cannot check; compile the artifact again with this llmc, or run it with the llmrun of the llmc that compiled it", path, f)
		}
		if sum != m.Checksum {
			return nil, fmt.Errorf("%s was edited after llmc wrote it (its checksum is %.12s…, its content hashes to %.12s…): compile the artifact again", path, m.Checksum, sum)
		}
	}
	return &m, nil
}

// rawChecksum hashes the manifest's bytes as Seal hashed them, its
// checksum's value blanked: "" if data does not hold that checksum. So
// that fields a newer llmc adds (optional ones: a change that older
// readers cannot ignore bumps Version) leave its manifests readable here,
// the bytes are what count; re-encoding what this llmc decoded, which
// drops such fields, is the check kept for a manifest whose formatting
// alone changed.
func rawChecksum(data []byte, sum string) string {
	if sum == "" {
		return ""
	}
	field := []byte(`"checksum": "` + sum + `"`)
	i := bytes.LastIndex(data, field)
	if i < 0 {
		return ""
	}
	blank := slices.Concat(data[:i], []byte(`"checksum": ""`), data[i+len(field):])
	h := sha256.Sum256(bytes.TrimSuffix(blank, []byte("\n")))
	return hex.EncodeToString(h[:])
}

// unknownField is the name of the first field of a manifest's JSON that
// Manifest does not have, or "".
func unknownField(data []byte) string {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var m Manifest
	err := d.Decode(&m)
	if err == nil {
		return ""
	}
	name, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return ""
	}
	return strings.Trim(name, `"`)
}

// checksum hashes the manifest as Seal writes it, with Checksum empty.
// Re-encoding what was decoded leaves formatting out of the check, and
// also the fields this llmc does not know: Read checks the bytes too
// (rawChecksum).
func (m *Manifest) checksum() (string, error) {
	c := *m
	c.Checksum = ""
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:]), nil
}

// Seal records the size and hash of every file in the artifact folder dir
// (but the manifest) and writes the manifest with its own checksum. It is
// the last step of writing an artifact.
func (m *Manifest) Seal(dir string) error {
	m.Contents = nil
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() || rel == ManifestName {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		f, err := DescribeFile(dir, rel, nil)
		if err != nil {
			return err
		}
		f.Name = filepath.ToSlash(rel)
		m.Contents = append(m.Contents, f)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sealing the artifact: %w", err)
	}
	if m.Checksum, err = m.checksum(); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, ManifestName), m)
}

// Edit applies edit to the manifest of the artifact in dir and seals it
// again. It is for tools and tests that change an artifact on purpose;
// the artifact must be intact before.
func Edit(dir string, edit func(*Manifest)) error {
	m, err := Read(dir)
	if err != nil {
		return err
	}
	edit(m)
	return m.Seal(dir)
}

// CheckContents verifies the files the artifact in dir holds against
// what Seal recorded: the named ones (relative, with slashes), or every
// one when none is named. As for model files (CheckModel), a file whose
// identity is as recorded is trusted without reading it, so that loading
// a large artifact does not hash its weights every time; otherwise its
// size and SHA-256 decide.
func (m *Manifest) CheckContents(dir string, names ...string) error {
	for _, c := range m.Contents {
		if len(names) > 0 && !slices.Contains(names, c.Name) {
			continue
		}
		if err := checkContent(dir, c, false); err != nil {
			return err
		}
	}
	return nil
}

// checkContent verifies one file of the artifact in dir, by content when
// full is set or its identity differs from the recorded one.
func checkContent(dir string, c File, full bool) error {
	rel := c.Name
	c.Name = filepath.FromSlash(c.Name)
	cur, err := checkFile(dir, c, full)
	if err != nil {
		return fmt.Errorf("artifact %s: %w: compile the artifact again", dir, err)
	}
	if cur.Size != c.Size {
		return fmt.Errorf("artifact %s: %s changed since it was compiled (%d bytes, was %d): compile the artifact again", dir, rel, cur.Size, c.Size)
	}
	if cur.SHA256 != c.SHA256 {
		return fmt.Errorf("artifact %s: %s changed since it was compiled (sha256 %.12s…, was %.12s…): compile the artifact again", dir, rel, cur.SHA256, c.SHA256)
	}
	return nil
}

// checkFile describes file f of dir as it is now: f itself when its
// identity (device, inode, size, mtime and ctime) is as recorded and full
// is not set, else its size and content hash read afresh.
func checkFile(dir string, f File, full bool) (File, error) {
	st, err := os.Stat(filepath.Join(dir, f.Name))
	if err != nil {
		return File{}, err
	}
	if st.Size() != f.Size {
		return File{Name: f.Name, Size: st.Size()}, nil
	}
	if !full && f.Inode != 0 && st.ModTime().UTC().Equal(f.ModTime) {
		if dev, ino, ctime, ok := identity(st); ok && dev == f.Device && ino == f.Inode && ctime.Equal(f.ChangeTime) {
			return f, nil
		}
	}
	return DescribeFile(dir, f.Name, nil)
}

// DescribeFile records a file's size, time, content hash and identity: a model
// file's, or (Seal) one of the artifact's own.
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
	file := File{Name: name, Size: st.Size(), ModTime: st.ModTime().UTC(), SHA256: sum}
	// The identity is taken after hashing: a write during the hash
	// changes the ctime, so the next load hashes again.
	if after, err := f.Stat(); err == nil {
		if dev, ino, ctime, ok := identity(after); ok {
			file.Device, file.Inode, file.ChangeTime = dev, ino, ctime
		}
	}
	return file, nil
}

func hashReader(r io.Reader, total int64, progress func(done, total int64)) (string, error) {
	h := sha256.New()
	// Big enough for few reads of a large model file, no bigger than a
	// small file needs: most of an artifact's files are small, and
	// zeroing 4 MiB for each costs more than hashing it.
	buf := make([]byte, min(max(total, 4<<10), 4<<20))
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
// compiled from. A file whose identity (device, inode, size, mtime and
// ctime) is as recorded is trusted without reading it; otherwise, or when
// full is set, its content hash decides.
func (m *Manifest) CheckModel(full bool) error {
	for _, f := range m.Model.Files {
		if err := m.checkModelFile(f, full); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) checkModelFile(f File, full bool) error {
	path := filepath.Join(m.Model.Dir, f.Name)
	cur, err := checkFile(m.Model.Dir, f, full)
	if err != nil {
		return fmt.Errorf("the artifact was compiled from %s: %w", path, err)
	}
	if cur.Size != f.Size {
		return fmt.Errorf("model file %s changed since it was compiled (size %d, was %d): compile again", path, cur.Size, f.Size)
	}
	if cur.SHA256 != f.SHA256 {
		return fmt.Errorf("model file %s changed since it was compiled (sha256 %.12s…, was %.12s…): compile again", path, cur.SHA256, f.SHA256)
	}
	return nil
}

// Check is one line of a Verify report.
type Check struct {
	What string // a file, or "manifest"
	Err  error  // nil when it is as recorded
}

// Verify checks everything an artifact depends on by content, whatever
// the files' identities say: the manifest's checksum, every file of the
// artifact and every model file. It returns the manifest it read and one
// Check per item; the manifest failing to read is the only error that
// stops it.
func Verify(dir string) (*Manifest, []Check, error) {
	m, err := Read(dir)
	if err != nil {
		return nil, nil, err
	}
	checks := []Check{{What: filepath.Join(dir, ManifestName)}}
	for _, c := range m.Contents {
		checks = append(checks, Check{What: filepath.Join(dir, filepath.FromSlash(c.Name)), Err: checkContent(dir, c, true)})
	}
	for _, f := range m.Model.Files {
		checks = append(checks, Check{What: filepath.Join(m.Model.Dir, f.Name), Err: m.checkModelFile(f, true)})
	}
	return m, checks, nil
}

// CheckReplaceable refuses a dir that WriteDir would not replace: one
// that exists and is not an llmc artifact (a file, or a folder without a
// manifest, an empty one too). A dir that does not exist passes.
func CheckReplaceable(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return nil // missing: created; unreadable: WriteDir says why
	}
	if !st.IsDir() || !IsArtifact(dir) {
		return fmt.Errorf("%s exists and is not an llmc artifact; not replacing it", dir)
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
	if _, statErr := os.Stat(dir); statErr == nil {
		if err = CheckReplaceable(dir); err != nil {
			return err
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

// writeJSON writes v as indented JSON to path.
func writeJSON(path string, v any) error {
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

// SweepStale removes the temporary folders that TempDir made for dir (for
// WriteDir, or for llmc synth's model folders) left behind when their
// process died, and returns their paths. A folder is stale when the
// process id in its name (.BASE.tmpPID-N, or .BASE.tmpPID-N.old while the
// folder at dir is replaced) is no longer running;
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
		return nil, fmt.Errorf("looking for unfinished temporary folders in %s: %w", parent, err)
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
