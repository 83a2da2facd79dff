package native

import "time"

// A team of two threads on a two-CPU machine that another CPU-bound process
// shares is slower than one thread: the kernel's scheduler time-slices
// three runnable threads over two CPUs, and every barrier of a step waits
// for whichever team thread is descheduled (measured on an AMD EPYC KVM
// guest: 2-thread decode at 0.45–0.91x of 1-thread decode, median 0.75x,
// with one busy loop beside it). Waiting threads already yield and then
// sleep, but a step has hundreds of barriers.
//
// chooser decides, step by step, whether an entry point's step runs on the
// team or on the calling thread alone (the step function runs alone when
// the context's team pointer is nil; the idle team threads sleep). It
// keeps the mean time per row of recent steps in the mode it runs, and now
// and then runs a probe, a few steps in the other mode, switching when the
// probe is clearly faster. Probes are rare while the team wins (a short
// one after warm-up, then when the team's steps get much slower than the
// best it has shown, or every maxQuiet steps), and regular while the
// caller runs alone, so the team is taken back once the machine is free.
type chooser struct {
	step  int  // steps observed
	alone bool // the mode steps run in, outside probes

	mean  float64 // recent mean ns per row in the current mode (0: none yet)
	best  float64 // the least mean seen since the last switch
	quiet int     // steps until the next periodic probe
	wait  int     // the current mode's probe interval

	probe    int     // steps left in a running probe, in the other mode
	probeSum float64 // their ns per row, summed
	probeN   int
}

// Tuning of chooser; see its comment.
const (
	warmSteps   = 8    // steps in team mode before the first probe
	probeSteps  = 3    // steps a probe runs
	aloneQuiet  = 32   // first interval between probes of the team while alone
	maxQuiet    = 1024 // longest interval between probes
	switchRatio = 0.85 // a probe's mean below this share of the current mean switches
	slowRatio   = 1.3  // the team's mean above this share of its best triggers a probe
	meanWeight  = 0.25 // weight of a new step in the recent mean
)

// nextAlone reports whether the next step runs on the caller alone.
func (c *chooser) nextAlone() bool {
	if c.probe > 0 {
		return !c.alone
	}
	return c.alone
}

// observe records a step that ran alone or not, took d for rows rows.
func (c *chooser) observe(alone bool, d time.Duration, rows int) {
	c.step++
	if c.step == 1 {
		return // cold caches and page faults
	}
	per := float64(d) / float64(max(1, rows))
	if c.probe > 0 && alone != c.alone {
		c.probeSum += per
		c.probeN++
		if c.probe--; c.probe == 0 {
			c.decide(c.probeSum / float64(c.probeN))
		}
		return
	}
	if c.mean == 0 {
		c.mean = per
	} else {
		c.mean += meanWeight * (per - c.mean)
	}
	if c.best == 0 || c.mean < c.best {
		c.best = c.mean
	}
	switch {
	case c.wait == 0 && c.step > warmSteps:
		c.start() // the first probe, after warm-up
	case c.wait == 0:
	case !c.alone && c.mean > slowRatio*c.best:
		c.start()
	default:
		if c.quiet--; c.quiet <= 0 {
			c.start()
		}
	}
}

func (c *chooser) start() {
	c.probe, c.probeSum, c.probeN = probeSteps, 0, 0
}

// decide ends a probe whose mean was other ns per row in the other mode.
func (c *chooser) decide(other float64) {
	if other < switchRatio*c.mean {
		c.alone = !c.alone
		c.mean, c.best = other, other
		c.wait = maxQuiet
		if c.alone {
			c.wait = aloneQuiet
		}
	} else {
		// The current mode keeps winning: alone, probe half as often;
		// on the team, measure its best afresh (positions grow, steps
		// slow down).
		if c.alone {
			c.wait = min(maxQuiet, max(2*c.wait, aloneQuiet))
		} else {
			c.wait = maxQuiet
		}
		c.best = c.mean
	}
	c.quiet = c.wait
}
