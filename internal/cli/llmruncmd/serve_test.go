package llmruncmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
)

// startServe runs llmrun serve with args (MODEL and flags; the address is
// a free port on 127.0.0.1) until the test ends, and returns its URL.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	fs := flag.NewFlagSet("llmrun serve", flag.ContinueOnError)
	f := registerServe(fs, nil)
	if err := fs.Parse(append([]string{"--addr", "127.0.0.1:0", "--quiet"}, args[1:]...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- f.run(ctx, fs, []string{args[0]}, &stderr, func(a string) { addr <- a })
	}()
	select {
	case a := <-addr:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("llmrun serve ended with %v", err)
			}
		})
		return "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("llmrun serve %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("llmrun serve did not start in 30 s")
	}
	return ""
}

// generated is what llmrun generate --format json reports.
type generated struct {
	Text            string `json:"text"`
	StopReason      string `json:"stop_reason"`
	GeneratedTokens int    `json:"generated_tokens"`
	PromptTokens    int    `json:"prompt_tokens"`
}

// finishReason is the OpenAI finish_reason of a generate stop reason.
func (g generated) finishReason() string {
	if g.StopReason == stopEOS || g.StopReason == stopString {
		return "stop"
	}
	return "length"
}

// generate runs llmrun generate in this process.
func generate(t *testing.T, args ...string) generated {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := llmrun(append([]string{"generate"}, append(args, "--format", "json", "--quiet")...), nil, &out, &errOut, nil); code != 0 {
		t.Fatalf("llmrun generate %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	var g generated
	if err := json.Unmarshal(out.Bytes(), &g); err != nil {
		t.Fatalf("llmrun generate: %v: %s", err, out.String())
	}
	return g
}

type apiResponse struct {
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func postJSON(t *testing.T, url string, body any) (int, apiResponse, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Error(err)
		return 0, apiResponse{}, ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var r apiResponse
	json.Unmarshal(data, &r)
	return resp.StatusCode, r, string(data)
}

// serveCase is a request and the llmrun generate flags that give the
// same generation.
type serveCase struct {
	prompt      string
	temperature float64
	seed        int
	stop        string
}

func (c serveCase) body(model string, maxTokens int) map[string]any {
	m := map[string]any{"model": model, "prompt": c.prompt, "max_tokens": maxTokens, "temperature": c.temperature, "seed": c.seed}
	if c.stop != "" {
		m["stop"] = c.stop
	}
	return m
}

func (c serveCase) generateArgs(model string, maxTokens int) []string {
	a := []string{model, "--prompt", c.prompt, "--max-new-tokens", strconv.Itoa(maxTokens),
		"--temperature", fmt.Sprint(c.temperature), "--seed", strconv.Itoa(c.seed)}
	if c.stop != "" {
		a = append(a, "--stop", c.stop)
	}
	return a
}

// TestServeLoad sends 40 requests over 8 concurrent clients to 4 slots:
// each response must be what llmrun generate gives for its prompt alone.
// It runs on the model folder (slots one after another, on forks of the
// program) and on an LLVM artifact compiled with --slots 4, whose slots
// decode together in one batched call per step.
func TestServeLoad(t *testing.T) {
	folder := testshared.Path(t, "models", "stories260K")
	t.Run("eager", func(t *testing.T) { serveLoad(t, folder) })
	t.Run("llvm-slots", func(t *testing.T) {
		if testing.Short() {
			t.Skip("compiles an artifact")
		}
		_, err := llvm.FindToolchain()
		if _, ok := errors.AsType[*llvm.ToolError](err); ok && !testshared.InCI() {
			t.Skipf("skipping: %v", err)
		}
		art := filepath.Join(t.TempDir(), "stories260K")
		_, err = compiler.Compile(folder, art, compiler.Options{Backend: "llvm", KV: passes.Static, MaxSeq: 128, PrefillChunk: 8, Slots: 4})
		if err != nil {
			t.Fatal(err)
		}
		serveLoad(t, art)
	})
}

func serveLoad(t *testing.T, model string) {
	const maxTokens, clients, requests = 24, 8, 40
	url := startServe(t, model, "--slots", "4", "--queue", "64", "--model-name", "stories260K")
	prompts := []string{"Once upon a time", "Once upon a time, there was", "The little dog", "Lily and Ben went to the park", "One day"}
	var cases []serveCase
	for i, p := range prompts {
		cases = append(cases, serveCase{prompt: p}, serveCase{prompt: p, temperature: 0.8, seed: 10 + i})
	}
	cases = append(cases, serveCase{prompt: "Once upon a time", temperature: 1, seed: 3, stop: "."})
	want := make([]generated, len(cases))
	texts := map[string]bool{}
	for i, c := range cases {
		want[i] = generate(t, c.generateArgs(model, maxTokens)...)
		texts[want[i].Text] = true
	}
	if len(texts) < len(cases)-2 {
		t.Fatalf("llmrun generate gives only %d different texts for %d cases: a mix-up could go unseen", len(texts), len(cases))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int]int{}
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := cl; r < requests; r += clients {
				k := r % len(cases)
				status, got, raw := postJSON(t, url+"/v1/completions", cases[k].body("stories260K", maxTokens))
				if status != 200 || len(got.Choices) != 1 {
					t.Errorf("request %d: status %d: %s", r, status, raw)
					continue
				}
				w := want[k]
				if got.Choices[0].Text != w.Text || got.Choices[0].FinishReason != w.finishReason() ||
					got.Usage.CompletionTokens != w.GeneratedTokens || got.Usage.PromptTokens != w.PromptTokens {
					t.Errorf("request %d (%+v): %q (%s, %d+%d tokens), llmrun generate: %q (%s, %d+%d tokens)", r, cases[k],
						got.Choices[0].Text, got.Choices[0].FinishReason, got.Usage.PromptTokens, got.Usage.CompletionTokens,
						w.Text, w.finishReason(), w.PromptTokens, w.GeneratedTokens)
				}
				mu.Lock()
				seen[r]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != requests {
		t.Errorf("%d of %d requests answered", len(seen), requests)
	}
	m := metricsText(t, url)
	if got := metricNumber(m, `llmc_requests_total{endpoint="completions",code="200"}`); got != requests {
		t.Errorf("the server counted %v requests with status 200, want %d", got, requests)
	}
}

func metricsText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metricNumber(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// chatModel writes a stories260K-shaped model with SmolLM2's tokenizer
// and ChatML template (random weights: the text is noise, the chat path
// is real).
func chatModel(t *testing.T) string {
	t.Helper()
	tok := testshared.Path(t, "tokenizers", "smollm2-135m-instruct")
	shape, err := synth.LookupShape("stories260K")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "smol260K")
	if _, err := synth.Write(dir, synth.Options{Shape: shape, Seed: 1, Tokenizer: tok, NoGenerationConfig: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestServeChatMatchesGenerate(t *testing.T) {
	model := chatModel(t)
	url := startServe(t, model, "--slots", "2")
	for _, c := range []struct {
		user        string
		temperature float64
		seed        int
	}{{"What is 2+2?", 0, 1}, {"Tell me a story.", 0.9, 5}} {
		want := generate(t, model, "--prompt", c.user, "--chat", "--max-new-tokens", "16",
			"--temperature", fmt.Sprint(c.temperature), "--seed", strconv.Itoa(c.seed))
		if want.Text == "" {
			t.Fatalf("llmrun generate --chat gave no text for %q: nothing to compare", c.user)
		}
		status, got, raw := postJSON(t, url+"/v1/chat/completions", map[string]any{
			"model": "smol260K", "messages": []map[string]string{{"role": "user", "content": c.user}},
			"max_tokens": 16, "temperature": c.temperature, "seed": c.seed})
		if status != 200 {
			t.Fatalf("status %d: %s", status, raw)
		}
		if got.Choices[0].Message.Content != want.Text || got.Choices[0].FinishReason != want.finishReason() {
			t.Errorf("%q: %q (%s), llmrun generate --chat: %q (%s)", c.user, got.Choices[0].Message.Content, got.Choices[0].FinishReason, want.Text, want.finishReason())
		}
	}
}

// TestServeOpenAIClient drives the server with the official openai npm
// client (internal/serve/testdata/client).
func TestServeOpenAIClient(t *testing.T) {
	model := testshared.Path(t, "models", "stories260K")
	clientDir, err := filepath.Abs(filepath.Join("..", "..", "serve", "testdata", "client"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	missing := func(why string) {
		if testshared.InCI() {
			t.Fatalf("%s (CI=true: the openai client test must run)", why)
		}
		t.Skip(why)
	}
	if err != nil {
		missing("node is not installed: the openai client test needs node 20")
	}
	if _, err := os.Stat(filepath.Join(clientDir, "node_modules", "openai")); err != nil {
		missing("the openai npm package is not installed: run scripts/setup.sh (npm ci in " + clientDir + ")")
	}
	chat := chatModel(t)
	const key = "test-key"
	url := startServe(t, model, "--slots", "4", "--api-key", key)
	chatURL := startServe(t, chat, "--slots", "2")
	const prompt = "Once upon a time"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", url, key, "stories260K", prompt, chatURL, "smol260K")
	cmd.Dir = clientDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client.mjs: %v\n%s", err, stderr.String())
	}
	type got struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Usage        *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Chunks int `json:"chunks"`
	}
	type status struct {
		Status int    `json:"status"`
		Name   string `json:"name"`
	}
	var r struct {
		Models     []string `json:"models"`
		Completion got
		Stream     got
		Chat       got
		ChatStream got `json:"chat_stream"`
		Concurrent []struct {
			Seed         int    `json:"seed"`
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		}
		Abort struct {
			Aborted bool `json:"aborted"`
			Chunks  int  `json:"chunks"`
		}
		Errors     map[string]status
		ChatErrors map[string]status `json:"chat_errors"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("the client's output: %v\n%s", err, out)
	}

	if len(r.Models) != 1 || r.Models[0] != "stories260K" {
		t.Errorf("models.list: %v, want [stories260K]", r.Models)
	}
	want := generate(t, model, "--prompt", prompt, "--max-new-tokens", "24", "--temperature", "0")
	for name, g := range map[string]got{"completions.create": r.Completion, "stream": r.Stream} {
		if g.Text != want.Text || g.FinishReason != want.finishReason() || g.Usage == nil || g.Usage.CompletionTokens != want.GeneratedTokens {
			t.Errorf("%s: %q (%s, usage %+v), llmrun generate: %q (%s, %d tokens)", name, g.Text, g.FinishReason, g.Usage, want.Text, want.finishReason(), want.GeneratedTokens)
		}
	}
	if r.Stream.Chunks < 2 {
		t.Errorf("the stream came in %d chunks, want one per token", r.Stream.Chunks)
	}
	if len(r.Concurrent) != 8 {
		t.Errorf("%d concurrent results, want 8", len(r.Concurrent))
	}
	for _, c := range r.Concurrent {
		w := generate(t, model, "--prompt", prompt, "--max-new-tokens", "20", "--temperature", "0.8", "--seed", strconv.Itoa(c.Seed))
		if c.Text != w.Text || c.FinishReason != w.finishReason() {
			t.Errorf("concurrent seed %d: %q (%s), llmrun generate: %q (%s)", c.Seed, c.Text, c.FinishReason, w.Text, w.finishReason())
		}
	}
	if !r.Abort.Aborted {
		t.Errorf("the aborted stream was not aborted: %+v", r.Abort)
	}
	deadline := time.Now().Add(5 * time.Second)
	for metricNumber(metricsText(t, url), "llmc_slots_busy") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a slot is still busy 5 s after the client aborted its stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := metricNumber(metricsText(t, url), "llmc_cancelled_total"); n < 1 {
		t.Errorf("llmc_cancelled_total is %v after an abort, want >= 1", n)
	}
	for name, w := range map[string]status{
		"unknown_model": {404, "NotFoundError"}, "bad_temperature": {400, "BadRequestError"},
		"bad_max_tokens": {400, "BadRequestError"}, "wrong_key": {401, "AuthenticationError"},
	} {
		if g := r.Errors[name]; g != w {
			t.Errorf("%s: the client saw %+v, want %+v", name, g, w)
		}
	}
	if g := r.ChatErrors["no_template"]; g.Status != 400 {
		t.Errorf("chat with a model without a chat template: %+v, want status 400", g)
	}
	wantChat := generate(t, chat, "--prompt", "What is 2+2?", "--chat", "--max-new-tokens", "16", "--temperature", "0")
	for name, g := range map[string]got{"chat.completions.create": r.Chat, "chat stream": r.ChatStream} {
		if g.Text != wantChat.Text || g.FinishReason != wantChat.finishReason() || g.Usage == nil || g.Usage.PromptTokens != wantChat.PromptTokens {
			t.Errorf("%s: %q (%s, usage %+v), llmrun generate --chat: %q (%s, %d prompt tokens)", name, g.Text, g.FinishReason, g.Usage, wantChat.Text, wantChat.finishReason(), wantChat.PromptTokens)
		}
	}
}
