package serve

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the server's counters, written in the Prometheus text
// format (version 0.0.4) by hand: /metrics.
type metrics struct {
	slots    int
	queueLen atomic.Int64
	busy     atomic.Int64

	mu           sync.Mutex
	requests     map[[2]string]int64 // {endpoint, status code} -> count
	promptTokens int64               // prompt tokens of admitted requests
	cachedTokens int64               // of those, the ones a slot's cache held
	genTokens    int64               // completion tokens
	cancelled    atomic.Int64        // jobs ended by their client or timeout
	ttft         histogram           // queue to first token, seconds
	tokenGap     histogram           // between two tokens of one request, seconds
	queueWait    histogram           // queue to admission, seconds
	stepTokens   int64               // tokens of decode steps
	stepSeconds  float64             // time in decode steps
	recent       []stepSample        // the last decode steps, for the rate gauge
}

type stepSample struct {
	at     time.Time
	tokens int
	took   time.Duration
}

// histogram is a Prometheus histogram with fixed upper bounds.
type histogram struct {
	bounds []float64
	counts []int64 // per bound, not cumulative; the last is +Inf
	sum    float64
	n      int64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]int64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

// latency buckets from 0.5 ms to 60 s.
var latencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(slots int) *metrics {
	return &metrics{slots: slots, requests: map[[2]string]int64{},
		ttft: newHistogram(latencyBounds), tokenGap: newHistogram(latencyBounds), queueWait: newHistogram(latencyBounds)}
}

func (m *metrics) request(endpoint string, status int) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, strconv.Itoa(status)}]++
	m.mu.Unlock()
}

func (m *metrics) admitted(cached, prefilled int, wait time.Duration) {
	m.mu.Lock()
	m.promptTokens += int64(cached + prefilled)
	m.cachedTokens += int64(cached)
	m.queueWait.observe(wait.Seconds())
	m.mu.Unlock()
}

func (m *metrics) firstToken(d time.Duration) {
	m.mu.Lock()
	m.ttft.observe(d.Seconds())
	m.mu.Unlock()
}

func (m *metrics) tokenGapSeen(d time.Duration) {
	m.mu.Lock()
	m.tokenGap.observe(d.Seconds())
	m.mu.Unlock()
}

func (m *metrics) finished(tokens int) {
	m.mu.Lock()
	m.genTokens += int64(tokens)
	m.mu.Unlock()
}

// rateWindow is how far back the decode rate gauge looks.
const rateWindow = 10 * time.Second

func (m *metrics) stepped(tokens int, took time.Duration) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stepTokens += int64(tokens)
	m.stepSeconds += took.Seconds()
	m.recent = append(m.recent, stepSample{at: now, tokens: tokens, took: took})
	k := 0
	for k < len(m.recent) && now.Sub(m.recent[k].at) > rateWindow {
		k++
	}
	m.recent = m.recent[k:]
}

// decodeRate is the tokens per second of the decode steps in the last
// rateWindow: tokens over wall time from the first step's start, 0 when
// there were none.
func (m *metrics) decodeRate(now time.Time) float64 {
	tokens := 0
	var start time.Time
	for _, s := range m.recent {
		if now.Sub(s.at) > rateWindow {
			continue
		}
		if start.IsZero() {
			start = s.at.Add(-s.took)
		}
		tokens += s.tokens
	}
	if tokens == 0 {
		return 0
	}
	return float64(tokens) / now.Sub(start).Seconds()
}

// write writes every metric in the Prometheus text format.
func (m *metrics) write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &promWriter{w: w}
	p.family("llmc_requests_total", "counter", "HTTP requests by endpoint and status code.")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if a[0] != b[0] {
			return strings.Compare(a[0], b[0])
		}
		return strings.Compare(a[1], b[1])
	})
	for _, k := range keys {
		p.sample("llmc_requests_total", fmt.Sprintf(`endpoint=%q,code=%q`, k[0], k[1]), float64(m.requests[k]))
	}
	p.counter("llmc_prompt_tokens_total", "Prompt tokens of the requests admitted to a slot.", float64(m.promptTokens))
	p.counter("llmc_prompt_cached_tokens_total", "Prompt tokens a slot's KV cache already held (not prefilled again).", float64(m.cachedTokens))
	p.counter("llmc_completion_tokens_total", "Tokens generated.", float64(m.genTokens))
	p.counter("llmc_cancelled_total", "Generations ended early because the client went away or the request timed out.", float64(m.cancelled.Load()))
	p.gauge("llmc_queue_length", "Requests waiting for a slot.", float64(m.queueLen.Load()))
	p.gauge("llmc_slots", "Slots (sequences decoded side by side).", float64(m.slots))
	p.gauge("llmc_slots_busy", "Slots running a request.", float64(m.busy.Load()))
	p.counter("llmc_decode_tokens_total", "Tokens produced by decode steps (all slots).", float64(m.stepTokens))
	p.counter("llmc_decode_seconds_total", "Time spent in decode steps.", m.stepSeconds)
	p.gauge("llmc_decode_tokens_per_second", fmt.Sprintf("Decode tokens per second over the last %v (all slots together).", rateWindow), m.decodeRate(time.Now()))
	p.histogram("llmc_time_to_first_token_seconds", "From a request's arrival in the queue to its first token.", &m.ttft)
	p.histogram("llmc_time_per_output_token_seconds", "Between two consecutive tokens of one request.", &m.tokenGap)
	p.histogram("llmc_queue_wait_seconds", "From a request's arrival in the queue to its slot.", &m.queueWait)
	return p.err
}

// promWriter writes metric families, keeping the first error.
type promWriter struct {
	w   io.Writer
	err error
}

func (p *promWriter) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *promWriter) family(name, kind, help string) {
	p.printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func (p *promWriter) sample(name, labels string, v float64) {
	if labels != "" {
		name += "{" + labels + "}"
	}
	p.printf("%s %s\n", name, formatFloat(v))
}

func (p *promWriter) counter(name, help string, v float64) {
	p.family(name, "counter", help)
	p.sample(name, "", v)
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.family(name, "gauge", help)
	p.sample(name, "", v)
}

func (p *promWriter) histogram(name, help string, h *histogram) {
	p.family(name, "histogram", help)
	var cum int64
	for i, b := range h.bounds {
		cum += h.counts[i]
		p.sample(name+"_bucket", fmt.Sprintf(`le=%q`, formatFloat(b)), float64(cum))
	}
	p.sample(name+"_bucket", `le="+Inf"`, float64(h.n))
	p.sample(name+"_sum", "", h.sum)
	p.sample(name+"_count", "", float64(h.n))
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
