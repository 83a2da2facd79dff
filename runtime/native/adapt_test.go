package native

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChooser drives a chooser with step times of a team and of the
// caller alone that change over a run, and checks which mode the steps
// ran in: it keeps the team while the team is faster (a few probe steps
// alone), goes alone soon after the team becomes slower than one thread
// (another process on the CPUs), and takes the team back once it is faster
// again.
func TestChooser(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, c := range []struct {
		name  string
		steps int
		// times gives step i's duration on the team and alone.
		times func(i int) (team, alone time.Duration)
		// The steps that ran alone: at most, at least, and (from, to) a
		// window all of whose steps but probes ran in the given mode.
		maxAlone, minAlone int
		from, to           int
		wantAlone          bool
	}{
		{"team faster", 3000, func(int) (time.Duration, time.Duration) { return ms(1), ms(1.9) },
			4 * probeSteps, 0, 20, 3000, false},
		{"alone faster from the start", 3000, func(int) (time.Duration, time.Duration) { return ms(2), ms(1.2) },
			3000, 2900, 20, 3000, true},
		{"contention starts", 3000, func(i int) (time.Duration, time.Duration) {
			if i < 1000 {
				return ms(1), ms(1.9)
			}
			return ms(2.6), ms(1.9)
		}, 2100, 1900, 1020, 3000, true},
		{"contention ends", 4000, func(i int) (time.Duration, time.Duration) {
			if i < 500 {
				return ms(2.6), ms(1.9)
			}
			return ms(1), ms(1.9)
		}, 1600, 400, 2000, 4000, false},
		{"a tie stays on the team", 3000, func(int) (time.Duration, time.Duration) { return ms(1), ms(0.95) },
			6 * probeSteps, 0, 20, 3000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ch chooser
			alone, wrong := 0, 0
			for i := range c.steps {
				a := ch.nextAlone()
				team, solo := c.times(i)
				d := team
				if a {
					alone++
					d = solo
				}
				if i >= c.from && i < c.to && a != c.wantAlone {
					wrong++
				}
				ch.observe(a, d, 1)
			}
			require.LessOrEqual(t, alone, c.maxAlone, "steps alone")
			require.GreaterOrEqual(t, alone, c.minAlone, "steps alone")
			// Probes of the other mode: a few steps every aloneQuiet
			// steps or more.
			require.LessOrEqual(t, wrong, probeSteps*((c.to-c.from)/aloneQuiet+1), "steps in the other mode in [%d, %d)", c.from, c.to)
		})
	}
}

// TestChooserRows: steps of several rows are compared per row, so a
// probe that happens to meet a long prefill chunk does not decide.
func TestChooserRows(t *testing.T) {
	var ch chooser
	for i := range 200 {
		a := ch.nextAlone()
		rows := 1 + i%7*20 // chunks of 1 to 121 rows
		per := time.Millisecond
		if a {
			per = 2 * time.Millisecond
		}
		ch.observe(a, time.Duration(rows)*per, rows)
	}
	require.False(t, ch.nextAlone() && ch.probe == 0, "the team, twice as fast per row, was left")
	require.False(t, ch.alone)
}
