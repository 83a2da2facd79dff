package artifact

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/llmc-dev/llmc/wformat"
)

// LayoutName is the layout file in an LLVM-backend artifact: see Layout.
const LayoutName = "layout.json"

// Layout is what the loader needs to know about a compiled program besides
// its code: the weights and KV cache states it reads, the memory it needs,
// and, per entry point, the phases to call in order.
type Layout struct {
	ABI     int    `json:"abi"`
	BuildID string `json:"build_id"`
	GOARCH  string `json:"goarch"`
	Triple  string `json:"triple,omitempty"`
	// MaxSeq and Vocab bound pos+len and the token ids a step may take:
	// the kernels index memory with them unchecked.
	MaxSeq int `json:"max_seq"`
	Vocab  int `json:"vocab"`
	// Slots is how many sequences the states hold (0 before ABI 3: one).
	Slots   int           `json:"slots,omitempty"`
	Arena   int           `json:"arena"`   // elements, the largest entry's
	Scratch int           `json:"scratch"` // elements
	Tokens  int           `json:"tokens"`  // elements (i32): RowFields × the largest Seq (ABI 3)
	Weights []Weight      `json:"weights"`
	States  []State       `json:"states"`
	Entries []LayoutEntry `json:"entries"`
}

// LayoutEntry is one entry point of a native program.
type LayoutEntry struct {
	Name     string  `json:"name"`
	Seq      int     `json:"seq"`
	Plan     string  `json:"plan"`           // symbol of its plan function
	Step     string  `json:"step,omitempty"` // symbol of its step function (ABI 2)
	OutShape []int   `json:"out_shape"`
	Phases   []Phase `json:"phases"`
}

// Phase is one phase function.
type Phase struct {
	Symbol   string `json:"symbol"`
	Parallel bool   `json:"parallel,omitempty"`
}

// ReadLayout reads a layout file.
func ReadLayout(path string) (*Layout, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var l Layout
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	if l.ABI < MinABIVersion || l.ABI > ABIVersion {
		return nil, fmt.Errorf("%s: native ABI version %d, this llmrun loads versions %d to %d: compile the artifact again with this llmc", path, l.ABI, MinABIVersion, ABIVersion)
	}
	if err := l.CheckStates(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &l, nil
}

// Write writes l to path as indented JSON.
func (l *Layout) Write(path string) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// CheckStates checks the states' formats against the ABI version: 16-bit
// states need ABIVersionKV16, and every format must be f32, f16 or bf16.
func (l *Layout) CheckStates() error {
	for _, s := range l.States {
		if !slices.Contains(wformat.KVFormats, s.Dtype) {
			return fmt.Errorf("state %s is stored as %s: KV cache states are f32, f16 or bf16", s.Name, s.Dtype)
		}
		if s.Dtype != wformat.F32 && l.ABI < ABIVersionKV16 {
			return fmt.Errorf("state %s is stored as %s, which native ABI version %d has no room for (version %d does): the layout is damaged; compile the artifact again", s.Name, s.Dtype, l.ABI, ABIVersionKV16)
		}
	}
	return nil
}
