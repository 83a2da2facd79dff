package chattemplate

import (
	"errors"
	"testing"
	"time"
)

// FuzzRender parses and renders arbitrary template text. It must never
// panic or hang, every failure must be an *Error or a *RaiseError, and
// rendering must be deterministic. The seed corpus is in
// testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"",
		"{{ messages[0].content }}",
		"{% for m in messages %}{{ loop.index }}{% endfor %}",
		"{%- if x -%}\n  a\n{% else %}b{% endif %}",
		"{# c #}{% raw %}{{{% endraw %}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := New(src, testTokens)
		if err != nil {
			checkErr(t, err)
			return
		}
		tmpl.now = func() time.Time { return pinnedClock }
		tmpl.maxOutput = 1 << 20
		tmpl.maxSteps = 20_000
		for _, msgs := range [][]Message{testMessages, nil} {
			a, errA := tmpl.Render(msgs, true)
			b, errB := tmpl.Render(msgs, true)
			if errA != nil {
				checkErr(t, errA)
				if errB == nil || errA.Error() != errB.Error() {
					t.Fatalf("nondeterministic error: %v vs %v", errA, errB)
				}
				continue
			}
			if errB != nil || a != b {
				t.Fatalf("nondeterministic output: %q vs %q (%v)", a, b, errB)
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	var te *Error
	var re *RaiseError
	switch {
	case errors.As(err, &te):
		if te.Line < 1 || te.Col < 1 || te.Msg == "" {
			t.Fatalf("bad error position or message: %#v", te)
		}
	case errors.As(err, &re):
	default:
		t.Fatalf("error of type %T: %v", err, err)
	}
}
