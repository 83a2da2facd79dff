package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// proseText returns about n bytes of varied English-like prose with
// numbers, punctuation, quotes, contractions and paragraph breaks,
// generated from a fixed seed.
func proseText(n int) string {
	words := strings.Fields(`the a of and to in is was that for on with as by at from it this be are or an
		model token compiler kernel memory tensor layer attention cache decoding graph weights
		river mountain village winter morning letter garden station library window
		quickly carefully never often almost together however meanwhile nevertheless
		runs reads writes builds measures returns compares splits merges prints walked found
		Istanbul Ankara Paris September Monday GPU CPU API HTTP JSON`)
	contr := []string{"don't", "it's", "we'll", "they've", "I'm", "she'd", "can't", "you're"}
	punct := []string{",", ";", ":", " -", "", "", "", ""}
	ends := []string{".", ".", ".", "!", "?", "...", ".\"", ")."}
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.Grow(n + 256)
	for b.Len() < n {
		nw := 4 + r.IntN(14)
		for i := 0; i < nw; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			switch k := r.IntN(20); {
			case k == 0:
				fmt.Fprintf(&b, "%d", r.IntN(100000))
			case k == 1:
				fmt.Fprintf(&b, "%d.%02d", r.IntN(1000), r.IntN(100))
			case k == 2:
				b.WriteString(contr[r.IntN(len(contr))])
			case k == 3:
				fmt.Fprintf(&b, "(%s)", words[r.IntN(len(words))])
			default:
				w := words[r.IntN(len(words))]
				if i == 0 {
					w = strings.ToUpper(w[:1]) + w[1:]
				}
				b.WriteString(w)
			}
			if i < nw-1 {
				b.WriteString(punct[r.IntN(len(punct))])
			}
		}
		b.WriteString(ends[r.IntN(len(ends))])
		if r.IntN(8) == 0 {
			b.WriteString("\n\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func benchmarkEncode(b *testing.B, name string) {
	tok := loadFixture(b, name)
	text := proseText(1 << 20)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	var n int
	for b.Loop() {
		ids, err := tok.Encode(text, true)
		if err != nil {
			b.Fatal(err)
		}
		n = len(ids)
	}
	b.ReportMetric(float64(n), "tokens")
}

// BenchmarkEncode1MB encodes 1 MiB of prose.
func BenchmarkEncode1MB(b *testing.B) {
	for _, name := range []string{"gpt2", "tinyllama-1.1b-chat-v1.0", "smollm2-135m-instruct", "phi-3.5-mini-instruct"} {
		b.Run(name, func(b *testing.B) { benchmarkEncode(b, name) })
	}
}

// BenchmarkDecode decodes the ids of 1 MiB of prose, in one call and
// through a StreamDecoder.
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"gpt2", "tinyllama-1.1b-chat-v1.0"} {
		tok := loadFixture(b, name)
		text := proseText(1 << 20)
		ids, err := tok.Encode(text, false)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/batch", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Decode(ids, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/stream", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				d := tok.NewStreamDecoder(false)
				for _, id := range ids {
					if _, err := d.Add(id); err != nil {
						b.Fatal(err)
					}
				}
				d.Flush()
			}
		})
	}
}

// BenchmarkLoad measures reading and building a tokenizer.
func BenchmarkLoad(b *testing.B) {
	dir := loadFixtureDir(b, "gpt2")
	for b.Loop() {
		if _, err := Load(dir); err != nil {
			b.Fatal(err)
		}
	}
}
