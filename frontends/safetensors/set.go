package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File names that OpenDir looks for, in order.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// A Set is the tensors of one or more safetensors files, looked up by name.
// It is what OpenDir returns for a model directory, sharded or not.
type Set struct {
	files  []*File
	byName map[string]*Tensor
	names  []string // sorted
}

// OpenDir opens the weights of the model directory dir. It uses, in order of
// preference:
//
//   - model.safetensors;
//   - model.safetensors.index.json, whose "weight_map" maps each tensor name
//     to the shard file (in dir) that holds it. Every shard must exist and
//     hold the tensors the index assigns to it;
//   - the only *.safetensors file in dir. Several such files without an index
//     are an error.
//
// No tensor name may appear in two files.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		return OpenFiles(single)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}

	index := filepath.Join(dir, IndexFileName)
	if _, err := os.Stat(index); err == nil {
		return openIndex(index)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var matches []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".safetensors") {
			matches = append(matches, e.Name())
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("safetensors: %s: no %s, %s or other *.safetensors file", dir, SingleFileName, IndexFileName)
	case 1:
		return OpenFiles(filepath.Join(dir, matches[0]))
	}
	return nil, fmt.Errorf("safetensors: %s: %d *.safetensors files (%s) but no %s to say how they fit together",
		dir, len(matches), strings.Join(matches, ", "), IndexFileName)
}

// OpenFiles opens each path with Open and presents their tensors as one Set.
// It fails if a tensor name appears in two files.
func OpenFiles(paths ...string) (*Set, error) {
	s := &Set{byName: make(map[string]*Tensor)}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			return nil, s.closeAfter(err)
		}
		s.files = append(s.files, f)
		for _, t := range f.tensors {
			if prev, ok := s.byName[t.Name]; ok {
				return nil, s.closeAfter(fmt.Errorf("safetensors: tensor %q is in both %s and %s", t.Name, s.fileOf(prev).path, p))
			}
			s.byName[t.Name] = t
			s.names = append(s.names, t.Name)
		}
	}
	slices.Sort(s.names)
	return s, nil
}

// closeAfter closes the set because of err and returns err, along with any
// error from closing.
func (s *Set) closeAfter(err error) error {
	if cerr := s.Close(); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// fileOf returns the file holding t.
func (s *Set) fileOf(t *Tensor) *File {
	for _, f := range s.files {
		if f.byName[t.Name] == t {
			return f
		}
	}
	return nil
}

// index is the part of model.safetensors.index.json that OpenDir uses.
type index struct {
	WeightMap map[string]string `json:"weight_map"`
}

func openIndex(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors: %s: no \"weight_map\" entries", path)
	}

	dir := filepath.Dir(path)
	byShard := make(map[string][]string) // shard file name -> tensor names
	for name, shard := range idx.WeightMap {
		if shard == "" || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q maps to %q, which is not a file name in %s", path, name, shard, dir)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	shards := slices.Sorted(maps.Keys(byShard))
	paths := make([]string, len(shards))
	for i, shard := range shards {
		paths[i] = filepath.Join(dir, shard)
		if _, err := os.Stat(paths[i]); err != nil {
			names := byShard[shard]
			slices.Sort(names)
			return nil, fmt.Errorf("safetensors: %s: shard %s (holding %d tensors, such as %q) cannot be opened: %w",
				path, shard, len(names), names[0], err)
		}
	}

	s, err := OpenFiles(paths...)
	if err != nil {
		return nil, err
	}
	for i, shard := range shards {
		f := s.files[i]
		names := byShard[shard]
		slices.Sort(names)
		for _, name := range names {
			if _, ok := f.byName[name]; !ok {
				return nil, s.closeAfter(fmt.Errorf("safetensors: %s: tensor %q is mapped to shard %s, which has no such tensor", path, name, shard))
			}
		}
	}
	return s, nil
}

// Tensor returns the tensor with the given name.
func (s *Set) Tensor(name string) (*Tensor, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Names returns the names of all tensors, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Files returns the paths of the opened files, in the order they were opened.
func (s *Set) Files() []string {
	paths := make([]string, len(s.files))
	for i, f := range s.files {
		paths[i] = f.path
	}
	return paths
}

// Close closes every file of the set. Tensor data must not be used
// afterwards.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
