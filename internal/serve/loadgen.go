package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadOptions describe a load test against a server speaking the OpenAI
// API: at each concurrency level, Clients[i] clients send Requests
// streamed requests between them.
type LoadOptions struct {
	URL       string // the server, such as http://127.0.0.1:8080
	APIKey    string
	Model     string // "" asks GET /v1/models for the first
	Clients   []int
	Requests  int // per level
	MaxTokens int
	Prompt    string
	Chat      bool // /v1/chat/completions with Prompt as the user message
	// Unique starts each request's prompt with its level and number, so
	// that no request finds another's prompt in a server's prefix cache
	// (which would skip its prefill).
	Unique bool
	// IgnoreEOS asks for MaxTokens tokens every time (llama.cpp's
	// ignore_eos, which llmrun serve takes too).
	IgnoreEOS   bool
	Temperature float64
	Timeout     time.Duration // per request (0: none)
	Client      *http.Client  // nil: a fresh one
}

// LoadLevel is what one concurrency level measured.
type LoadLevel struct {
	Clients          int     `json:"clients"`
	Requests         int     `json:"requests"`
	Failed           int     `json:"failed"`
	FirstError       string  `json:"first_error,omitempty"`
	CompletionTokens int     `json:"completion_tokens"`
	WallSeconds      float64 `json:"wall_seconds"`
	// TokensPerSecond is the completion tokens of all requests over the
	// level's wall time: the server's aggregate decode rate.
	TokensPerSecond float64 `json:"tokens_per_second"`
	// TTFT is from sending a request to its first text chunk; TPOT is
	// the time between two text chunks of a request (one token each as
	// llmrun serve streams them). Seconds.
	TTFTp50 float64 `json:"ttft_p50_seconds"`
	TTFTp99 float64 `json:"ttft_p99_seconds"`
	TPOTp50 float64 `json:"per_token_p50_seconds"`
	TPOTp99 float64 `json:"per_token_p99_seconds"`
}

// Load runs the load test, one level after another.
func Load(ctx context.Context, o LoadOptions) ([]LoadLevel, error) {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Model == "" {
		m, err := firstModel(ctx, o)
		if err != nil {
			return nil, err
		}
		o.Model = m
	}
	var out []LoadLevel
	for _, c := range o.Clients {
		lv, err := loadLevel(ctx, o, c)
		if err != nil {
			return out, err
		}
		out = append(out, lv)
	}
	return out, nil
}

func firstModel(ctx context.Context, o LoadOptions) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", o.URL+"/v1/models", nil)
	if err != nil {
		return "", err
	}
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking %s for its models: %w", o.URL, err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("GET %s/v1/models: status %d: %s", o.URL, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) == 0 {
		return "", fmt.Errorf("GET %s/v1/models lists no model (%v)", o.URL, err)
	}
	return list.Data[0].ID, nil
}

// timing is one request's measurements.
type timing struct {
	ttft   time.Duration
	gaps   []time.Duration
	tokens int
	err    error
}

func loadLevel(ctx context.Context, o LoadOptions, clients int) (LoadLevel, error) {
	var next atomic.Int64
	results := make([]timing, o.Requests)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= o.Requests || ctx.Err() != nil {
					return
				}
				ro := o
				if o.Unique {
					ro.Prompt = fmt.Sprintf("%d.%d. %s", clients, k, o.Prompt)
				}
				results[k] = oneRequest(ctx, ro)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return LoadLevel{}, err
	}
	lv := LoadLevel{Clients: clients, Requests: o.Requests, WallSeconds: wall.Seconds()}
	var ttft, gaps []float64
	for _, r := range results {
		if r.err != nil {
			lv.Failed++
			if lv.FirstError == "" {
				lv.FirstError = r.err.Error()
			}
			continue
		}
		lv.CompletionTokens += r.tokens
		ttft = append(ttft, r.ttft.Seconds())
		for _, g := range r.gaps {
			gaps = append(gaps, g.Seconds())
		}
	}
	lv.TokensPerSecond = float64(lv.CompletionTokens) / wall.Seconds()
	lv.TTFTp50, lv.TTFTp99 = quantile(ttft, 0.5), quantile(ttft, 0.99)
	lv.TPOTp50, lv.TPOTp99 = quantile(gaps, 0.5), quantile(gaps, 0.99)
	return lv, nil
}

// quantile is the q-quantile of xs (nearest rank), 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(q*float64(len(s))+0.5) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// oneRequest sends one streamed request and times its chunks.
func oneRequest(ctx context.Context, o LoadOptions) timing {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	body := map[string]any{"model": o.Model, "max_tokens": o.MaxTokens, "temperature": o.Temperature, "stream": true,
		"stream_options": map[string]bool{"include_usage": true}}
	if o.IgnoreEOS {
		body["ignore_eos"] = true
	}
	path := "/v1/completions"
	if o.Chat {
		path = "/v1/chat/completions"
		body["messages"] = []map[string]string{{"role": "user", "content": o.Prompt}}
	} else {
		body["prompt"] = o.Prompt
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", o.URL+path, bytes.NewReader(b))
	if err != nil {
		return timing{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	// As the openai clients do: a POST with an idempotency key is one
	// net/http may send again on a new connection when the server closed
	// the kept-alive one it first tried (llama-server closes idle ones),
	// instead of failing the request.
	req.Header.Set("Idempotency-Key", fmt.Sprintf("llmrun-loadgen-%d-%d", time.Now().UnixNano(), rand.Uint64()))
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	sent := time.Now()
	resp, err := o.Client.Do(req)
	if err != nil {
		return timing{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		return timing{err: fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))}
	}
	var t timing
	var last time.Time
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var c struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return timing{err: fmt.Errorf("a chunk is not JSON: %v", err)}
		}
		if c.Error != nil {
			return timing{err: errors.New(c.Error.Message)}
		}
		if c.Usage != nil {
			t.tokens = c.Usage.CompletionTokens
		}
		if len(c.Choices) == 0 || c.Choices[0].Text+c.Choices[0].Delta.Content == "" {
			continue
		}
		now := time.Now()
		if last.IsZero() {
			t.ttft = now.Sub(sent)
		} else {
			t.gaps = append(t.gaps, now.Sub(last))
		}
		last = now
	}
	if err := sc.Err(); err != nil {
		return timing{err: err}
	}
	if !done {
		return timing{err: errors.New("the stream ended without data: [DONE]")}
	}
	return t
}

// WriteLoadTable writes levels as a table.
func WriteLoadTable(w io.Writer, levels []LoadLevel) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-9s %-7s %-8s %-12s %-22s %-23s %s\n", "clients", "requests", "failed", "tokens", "tok/s (all)", "TTFT ms p50 / p99", "per-token ms p50 / p99", "wall s")
	for _, l := range levels {
		fmt.Fprintf(&b, "%-8d %-9d %-7d %-8d %-12.1f %-22s %-23s %.2f\n", l.Clients, l.Requests, l.Failed, l.CompletionTokens, l.TokensPerSecond,
			fmt.Sprintf("%.1f / %.1f", l.TTFTp50*1000, l.TTFTp99*1000), fmt.Sprintf("%.2f / %.2f", l.TPOTp50*1000, l.TPOTp99*1000), l.WallSeconds)
	}
	for _, l := range levels {
		if l.FirstError != "" {
			fmt.Fprintf(&b, "%d clients: first error: %s\n", l.Clients, l.FirstError)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
