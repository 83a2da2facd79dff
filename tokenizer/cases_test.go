package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/testshared"
)

// fixtureNames are the tokenizers under shared/tokenizers.
var fixtureNames = []string{
	"gpt2",
	"tinyllama-1.1b-chat-v1.0",
	"smollm2-135m-instruct",
	"phi-3.5-mini-instruct",
}

// loaded caches the fixture tokenizers across tests in this package run.
var loaded sync.Map // dir -> *Tokenizer

func loadFixtureDir(tb testing.TB, name string) string {
	tb.Helper()
	return testshared.Path(tb, "tokenizers", name)
}

func loadFixture(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	dir := loadFixtureDir(tb, name)
	if tok, ok := loaded.Load(dir); ok {
		return tok.(*Tokenizer)
	}
	tok, err := Load(dir)
	require.NoError(tb, err)
	loaded.Store(dir, tok)
	return tok
}

// refCase is one line of cases.jsonl: the reference's output for a text.
type refCase struct {
	Text               string   `json:"text"`
	AddSpecialTokens   bool     `json:"add_special_tokens"`
	IDs                []int    `json:"ids"`
	Decoded            string   `json:"decoded"`
	DecodedSkipSpecial string   `json:"decoded_skip_special"`
	Tokens             []string `json:"tokens"`
	Kind               string   `json:"kind"`
}

func readCases(tb testing.TB, name string) []refCase {
	tb.Helper()
	f, err := os.Open(testshared.Path(tb, "tokenizers", name, "cases.jsonl"))
	require.NoError(tb, err)
	defer f.Close()
	var cases []refCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c refCase
		require.NoError(tb, json.Unmarshal(sc.Bytes(), &c), "line %d", len(cases)+1)
		cases = append(cases, c)
	}
	require.NoError(tb, sc.Err())
	require.NotEmpty(tb, cases)
	return cases
}

// streamDecode feeds ids one at a time and returns the concatenated output.
func streamDecode(tb testing.TB, tok *Tokenizer, ids []int, skip bool) string {
	tb.Helper()
	d := tok.NewStreamDecoder(skip)
	var b strings.Builder
	for _, id := range ids {
		s, err := d.Add(id)
		require.NoError(tb, err)
		b.WriteString(s)
	}
	b.WriteString(d.Flush())
	return b.String()
}

// TestReferenceCases checks every line of every cases.jsonl: the ids of
// Encode, Decode with and without special tokens, and the StreamDecoder.
func TestReferenceCases(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			tok := loadFixture(t, name)
			cases := readCases(t, name)
			passed := 0
			for i, c := range cases {
				label := fmt.Sprintf("%03d_%s_special=%v", i+1, c.Kind, c.AddSpecialTokens)
				ok := t.Run(label, func(t *testing.T) {
					ids, err := tok.Encode(c.Text, c.AddSpecialTokens)
					require.NoError(t, err)
					if !assert.Equal(t, c.IDs, ids, "Encode(%q)", c.Text) {
						got := make([]string, len(ids))
						for k, id := range ids {
							got[k] = tok.Token(id)
						}
						t.Logf("want tokens %q\n got tokens %q", c.Tokens, got)
					}
					dec, err := tok.Decode(c.IDs, false)
					require.NoError(t, err)
					assert.Equal(t, c.Decoded, dec, "Decode(skip=false)")
					dec, err = tok.Decode(c.IDs, true)
					require.NoError(t, err)
					assert.Equal(t, c.DecodedSkipSpecial, dec, "Decode(skip=true)")
					assert.Equal(t, c.Decoded, streamDecode(t, tok, c.IDs, false), "StreamDecoder(skip=false)")
					assert.Equal(t, c.DecodedSkipSpecial, streamDecode(t, tok, c.IDs, true), "StreamDecoder(skip=true)")
				})
				if ok {
					passed++
				}
			}
			t.Logf("%s: %d/%d cases pass", filepath.Join(name, "cases.jsonl"), passed, len(cases))
		})
	}
}

// TestReferenceChat checks the rendered chat prompts of chat.jsonl, which
// are full of special tokens.
func TestReferenceChat(t *testing.T) {
	for _, name := range fixtureNames {
		path := filepath.Join(testshared.Dir(t), "tokenizers", name, "chat.jsonl")
		if _, err := os.Stat(path); err != nil {
			continue // not every tokenizer has a chat template
		}
		t.Run(name, func(t *testing.T) {
			tok := loadFixture(t, name)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var c struct {
					Rendered         string `json:"rendered"`
					IDs              []int  `json:"ids"`
					AddSpecialTokens bool   `json:"add_special_tokens"`
				}
				require.NoError(t, json.Unmarshal([]byte(line), &c))
				ids, err := tok.Encode(c.Rendered, c.AddSpecialTokens)
				require.NoError(t, err)
				assert.Equal(t, c.IDs, ids, "line %d: Encode(%q)", i+1, c.Rendered)
				dec, err := tok.Decode(ids, false)
				require.NoError(t, err)
				assert.Equal(t, dec, streamDecode(t, tok, ids, false), "line %d: StreamDecoder", i+1)
			}
		})
	}
}
