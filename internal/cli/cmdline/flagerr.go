package cmdline

import (
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// invalidValue matches the flag package's error for a value its flag
// refuses.
var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-(\S+): (.*)$`)

// flagError words an error of the flag package as one line in the terms
// of the help: the flag as --name, and what a value must look like.
func flagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if near := nearestFlag(fs, name); near != "" {
			return fmt.Sprintf("unknown flag %s%s (did you mean %s%s?)", dashes(name), name, dashes(near), near)
		}
		return fmt.Sprintf("unknown flag %s%s", dashes(name), name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("%s%s needs a value", dashes(name), name)
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		value, name, why := m[1], m[2], m[3]
		switch f := fs.Lookup(name); {
		case why == "value out of range":
			why = "out of range"
		case why == "parse error" && f != nil && wantOf(f) != "":
			why = "want " + wantOf(f)
		}
		return fmt.Sprintf("invalid value %s for %s%s: %s", value, dashes(name), name, why)
	}
	return msg
}

// dashes is how the help spells a flag: -o, but --max-seq.
func dashes(name string) string {
	if len(name) == 1 {
		return "-"
	}
	return "--"
}

// wantOf says what a value of f's type looks like, or "".
func wantOf(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return "true or false"
	case int, int64:
		return "an integer"
	case uint, uint64:
		return "a non-negative integer"
	case float64:
		return "a number"
	case time.Duration:
		return "a duration such as 30s, 5m or 1h30m"
	}
	return ""
}

// nearestFlag is the flag of fs that name most likely misspells: the one
// closest by edit distance (1 edit, 2 for names of more than 5 letters)
// and closer than any other, or else the one flag that name is a prefix
// of; "" if none, or name is shorter than 3 letters.
func nearestFlag(fs *flag.FlagSet, name string) string {
	if len(name) < 3 {
		return ""
	}
	best, bestD, tie := "", 0, false
	var prefixed []string
	fs.VisitAll(func(f *flag.Flag) {
		d, most := editDistance(name, f.Name), 1
		if min(len(name), len(f.Name)) > 5 {
			most = 2
		}
		switch {
		case d > most:
		case best == "" || d < bestD:
			best, bestD, tie = f.Name, d, false
		case d == bestD:
			tie = true
		}
		if strings.HasPrefix(f.Name, name) {
			prefixed = append(prefixed, f.Name)
		}
	})
	if best != "" && !tie {
		return best
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the optimal string alignment distance of a and b, in
// bytes: the insertions, deletions, substitutions and transpositions of
// two neighbours that turn a into b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
