package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

const fakeName = "fake"

// start serves a fake model with n slots of context positions.
func start(t *testing.T, n, context int, cfg Config, text Text) (*Server, *fakeSlots, string) {
	t.Helper()
	return startSlots(t, newFakeSlots(t, n, context), cfg, text)
}

// startSlots serves slots.
func startSlots(t *testing.T, slots *fakeSlots, cfg Config, text Text) (*Server, *fakeSlots, string) {
	t.Helper()
	srv := New(cfg)
	if err := srv.SetModel(&Model{Name: fakeName, Slots: slots, Text: text}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Shutdown(time.Second)
	})
	return srv, slots, ts.URL
}

func post(t *testing.T, url, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// reference is what runtime.Generate gives for prompt alone on a fresh
// fake decoder: the text and the finish reason.
func reference(t *testing.T, prompt string, chat bool, o sample.Options, maxNew, context int, stops []string) (string, string, int) {
	t.Helper()
	var ft fakeText
	var ids []int
	var err error
	if chat {
		ids, err = ft.EncodeChat(chatMsgs(prompt))
	} else {
		ids, err = ft.Encode(prompt)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := sample.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if maxNew == 0 {
		maxNew = context + 1 - len(ids)
	}
	st := &fakeStream{stops: stops, emit: func(string) {}}
	res, err := runtime.Generate(&fakeDecoder{context: context}, ids, runtime.GenerateOptions{
		MaxNewTokens: maxNew, Sampler: s, EOS: []int{fakeEOS}, OnToken: st.Add})
	if err != nil {
		t.Fatal(err)
	}
	st.Finish()
	finish := finishLength
	if res.StopReason != "length" {
		finish = finishStop
	}
	return st.text.String(), finish, len(res.IDs)
}

func chatMsgs(user string) []chattemplate.Message {
	return []chattemplate.Message{{Role: "user", Content: user}}
}

func TestHealthBeforeAndAfterLoad(t *testing.T) {
	srv := New(Config{})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	get := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path string
		want int
	}{{"/health", 503}, {"/v1/models", 503}, {"/metrics", 200}} {
		if got := get(c.path); got != c.want {
			t.Errorf("before loading, GET %s = %d, want %d", c.path, got, c.want)
		}
	}
	if err := srv.SetModel(&Model{Name: fakeName, Slots: newFakeSlots(t, 1, 64), Text: fakeText{}}); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(time.Second)
	for _, path := range []string{"/health", "/v1/models", "/v1/models/" + fakeName} {
		if got := get(path); got != 200 {
			t.Errorf("after loading, GET %s = %d, want 200", path, got)
		}
	}
	if got := get("/v1/models/other"); got != 404 {
		t.Errorf("GET /v1/models/other = %d, want 404", got)
	}
}

func TestModels(t *testing.T) {
	_, _, url := start(t, 1, 64, Config{}, fakeText{})
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object string
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != fakeName || list.Data[0].Object != "model" {
		t.Errorf("GET /v1/models = %+v, want a list of one model %q", list, fakeName)
	}
}

func TestErrors(t *testing.T) {
	const ctx = 32
	_, _, url := start(t, 1, ctx, Config{}, fakeText{})
	_, _, noChatURL := start(t, 1, ctx, Config{}, fakeText{noChat: true})
	_, _, keyURL := start(t, 1, ctx, Config{APIKey: "sekrit"}, fakeText{})
	long := strings.Repeat("a", ctx)
	for _, c := range []struct {
		name, url, path, body string
		header                []string
		status                int
		param                 string // "" when none is expected
		message               string // a regexp the message must match
	}{
		{"malformed JSON", url, "/v1/completions", `{"model": "fake", "prompt": `, nil, 400, "", "not valid JSON"},
		{"empty body", url, "/v1/completions", ``, nil, 400, "", "empty"},
		{"wrong type", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "max_tokens": "many"}`, nil, 400, "max_tokens", "want an integer"},
		{"temperature type", url, "/v1/chat/completions", `{"model": "fake", "messages": [{"role": "user", "content": "a"}], "temperature": "hot"}`, nil, 400, "temperature", "want a number"},
		{"negative temperature", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "temperature": -1}`, nil, 400, "temperature", "temperature is -1"},
		{"top_p above 1", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "top_p": 1.5}`, nil, 400, "top_p", "top_p"},
		{"max_tokens 0", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "max_tokens": 0}`, nil, 400, "max_tokens", "at least 1"},
		{"negative seed", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "seed": -3}`, nil, 400, "seed", "non-negative"},
		{"n 2", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "n": 2}`, nil, 400, "n", "one choice"},
		{"logit_bias", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "logit_bias": {"5": -100}}`, nil, 400, "logit_bias", "not supported"},
		{"presence_penalty", url, "/v1/chat/completions", `{"model": "fake", "messages": [{"role": "user", "content": "a"}], "presence_penalty": 0.5}`, nil, 400, "presence_penalty", "not supported.*repetition_penalty"},
		{"stop type", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "stop": 3}`, nil, 400, "stop", "string or an array"},
		{"five stops", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "stop": ["a","b","c","d","e"]}`, nil, 400, "stop", "at most 4"},
		{"no prompt", url, "/v1/completions", `{"model": "fake"}`, nil, 400, "prompt", "required"},
		{"two prompts", url, "/v1/completions", `{"model": "fake", "prompt": ["a", "b"]}`, nil, 400, "prompt", "one prompt"},
		{"prompt id outside vocab", url, "/v1/completions", `{"model": "fake", "prompt": [2, 99]}`, nil, 400, "prompt", "outside the vocabulary 0..28"},
		{"untokenizable prompt", url, "/v1/completions", `{"model": "fake", "prompt": "A!"}`, nil, 400, "prompt", "no token"},
		{"missing model", url, "/v1/completions", `{"prompt": "ab"}`, nil, 400, "model", "model is required"},
		{"unknown model", url, "/v1/completions", `{"model": "gpt-4", "prompt": "ab"}`, nil, 404, "model", `"gpt-4" does not exist`},
		{"unknown model, chat", url, "/v1/chat/completions", `{"model": "gpt-4", "messages": [{"role": "user", "content": "a"}]}`, nil, 404, "model", "does not exist"},
		{"prompt too long", url, "/v1/completions", fmt.Sprintf(`{"model": "fake", "prompt": %q}`, long), nil, 400, "prompt", fmt.Sprintf("context holds %d positions", ctx)},
		{"chat too long", url, "/v1/chat/completions", fmt.Sprintf(`{"model": "fake", "messages": [{"role": "user", "content": %q}]}`, long), nil, 400, "messages", fmt.Sprintf("holds %d positions", ctx)},
		{"max_tokens past context", url, "/v1/completions", `{"model": "fake", "prompt": "ab", "max_tokens": 40}`, nil, 400, "max_tokens", fmt.Sprintf("holds %d positions.*at most %d", ctx, ctx-1)},
		{"no messages", url, "/v1/chat/completions", `{"model": "fake", "messages": []}`, nil, 400, "messages", "required"},
		{"bad role", url, "/v1/chat/completions", `{"model": "fake", "messages": [{"role": "wizard", "content": "a"}]}`, nil, 400, "messages[0].role", "wizard"},
		{"image part", url, "/v1/chat/completions", `{"model": "fake", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}`, nil, 400, "messages[0].content", "only text"},
		{"tools", url, "/v1/chat/completions", `{"model": "fake", "messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function"}]}`, nil, 400, "tools", "not supported"},
		{"no chat template", noChatURL, "/v1/chat/completions", `{"model": "fake", "messages": [{"role": "user", "content": "a"}]}`, nil, 400, "messages", "no chat template.*/v1/completions"},
		{"unknown route", url, "/v1/embeddings", `{}`, nil, 404, "", "no route POST /v1/embeddings"},
		{"missing key", keyURL, "/v1/completions", `{"model": "fake", "prompt": "ab", "max_tokens": 2}`, nil, 401, "", "API key"},
		{"wrong key", keyURL, "/v1/completions", `{"model": "fake", "prompt": "ab", "max_tokens": 2}`, []string{"Authorization", "Bearer nope"}, 401, "", "API key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, c.url+c.path, c.body, c.header...)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
			}
			var e errorBody
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("body %s is not an OpenAI error (err %v)", body, err)
			}
			if got := deref(e.Error.Param); got != c.param {
				t.Errorf("param %q, want %q (message %q)", got, c.param, e.Error.Message)
			}
			if !regexp.MustCompile(c.message).MatchString(e.Error.Message) {
				t.Errorf("message %q does not match %q", e.Error.Message, c.message)
			}
		})
	}
	t.Run("right key", func(t *testing.T) {
		resp, body := post(t, keyURL+"/v1/completions", `{"model": "fake", "prompt": "ab", "max_tokens": 2}`, "Authorization", "Bearer sekrit")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d with the right key: %s", resp.StatusCode, body)
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text    string `json:"text"`
		Message *struct {
			Role, Content string
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

func (c *completion) text() string {
	if len(c.Choices) == 0 {
		return ""
	}
	if m := c.Choices[0].Message; m != nil {
		return m.Content
	}
	return c.Choices[0].Text
}

// genCase is one request and what it must give.
type genCase struct {
	prompt      string
	chat        bool
	temperature float64
	seed        int64
	maxTokens   int // 0: unset
	stops       []string
}

func (g genCase) body(stream bool) string {
	m := map[string]any{"model": fakeName, "temperature": g.temperature, "seed": g.seed, "stream": stream}
	if g.chat {
		m["messages"] = []map[string]string{{"role": "user", "content": g.prompt}}
	} else {
		m["prompt"] = g.prompt
	}
	if g.maxTokens > 0 {
		m["max_tokens"] = g.maxTokens
	}
	if len(g.stops) > 0 {
		m["stop"] = g.stops
	}
	if stream {
		m["stream_options"] = map[string]bool{"include_usage": true}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func (g genCase) path() string {
	if g.chat {
		return "/v1/chat/completions"
	}
	return "/v1/completions"
}

// do runs g against url, streamed or not, and returns the text, the
// finish reason and the completion tokens.
func (g genCase) do(t *testing.T, url string, stream bool) (string, string, int) {
	t.Helper()
	resp, body := post(t, url+g.path(), g.body(stream))
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d: %s", g.body(stream), resp.StatusCode, body)
	}
	if !stream {
		var c completion
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		if c.Usage == nil || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
			t.Errorf("usage %+v does not add up", c.Usage)
		}
		return c.text(), c.Choices[0].FinishReason, c.Usage.CompletionTokens
	}
	chunks, done := parseSSE(t, body)
	if !done {
		t.Fatalf("the stream does not end with data: [DONE]:\n%s", body)
	}
	var text strings.Builder
	finish, tokens := "", -1
	for k, c := range chunks {
		want := "text_completion"
		if g.chat {
			want = "chat.completion.chunk"
		}
		if c.Object != want || c.ID != chunks[0].ID {
			t.Errorf("chunk %d: object %q id %q, want %q and the first chunk's id", k, c.Object, c.ID, want)
		}
		if c.Usage != nil {
			if k != len(chunks)-1 || len(c.Choices) != 0 {
				t.Errorf("chunk %d: usage before the end, or with choices", k)
			}
			tokens = c.Usage.CompletionTokens
			continue
		}
		if c.Choices[0].FinishReason != "" {
			finish = c.Choices[0].FinishReason
		}
		text.WriteString(c.stream())
	}
	if g.chat && (chunks[0].Choices[0].Delta == nil || chunks[0].Choices[0].Delta.Role != "assistant") {
		t.Errorf("the first chat chunk does not give the assistant role: %+v", chunks[0])
	}
	return text.String(), finish, tokens
}

type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Choices []struct {
		Text  string `json:"text"`
		Delta *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (c chunk) stream() string {
	if d := c.Choices[0].Delta; d != nil {
		return d.Content
	}
	return c.Choices[0].Text
}

// parseSSE reads data: events; done tells whether [DONE] ended them.
func parseSSE(t *testing.T, body []byte) (chunks []chunk, done bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data: line", line)
		}
		if done {
			t.Fatalf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if c.Error != nil {
			t.Fatalf("error event: %s", c.Error.Message)
		}
		chunks = append(chunks, c)
	}
	return chunks, done
}

var genCases = []genCase{
	{prompt: "once upon a time", temperature: 0, seed: 1, maxTokens: 20},
	{prompt: "once upon a time", temperature: 0.9, seed: 7, maxTokens: 30},
	{prompt: "once upon a time", temperature: 0.9, seed: 8, maxTokens: 30},
	{prompt: "the cat", temperature: 1.3, seed: 3},
	{prompt: "hello", chat: true, temperature: 0.7, seed: 11, maxTokens: 25},
	{prompt: "the cat sat", temperature: 1, seed: 5, maxTokens: 40, stops: []string{"ab", "e "}},
	{prompt: "zz", temperature: 0, seed: 0, maxTokens: 64, stops: []string{"q"}},
}

func TestGenerationMatchesGenerate(t *testing.T) {
	const ctx = 96
	_, _, url := start(t, 2, ctx, Config{}, fakeText{})
	for _, stream := range []bool{false, true} {
		for _, g := range genCases {
			t.Run(fmt.Sprintf("stream=%v/%s", stream, g.body(false)), func(t *testing.T) {
				want, wantFinish, wantTokens := reference(t, g.prompt, g.chat, sample.Options{Temperature: g.temperature, Seed: uint64(g.seed)}, g.maxTokens, ctx, g.stops)
				got, finish, tokens := g.do(t, url, stream)
				if got != want || finish != wantFinish || tokens != wantTokens {
					t.Errorf("got %q (%s, %d tokens), want %q (%s, %d tokens), as runtime.Generate gives", got, finish, tokens, want, wantFinish, wantTokens)
				}
				for _, s := range g.stops {
					if strings.Contains(got, s) {
						t.Errorf("the text %q holds the stop string %q", got, s)
					}
				}
			})
		}
	}
}

// TestConcurrentMatchesAlone sends many requests at once over fewer
// slots, sharing prefixes: each must give what it gives alone. The slots
// run one after another, or as a batched program whose steps carry
// pieces of prefills along with the decode steps.
func TestConcurrentMatchesAlone(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) { concurrentMatchesAlone(t, batched) })
	}
}

func concurrentMatchesAlone(t *testing.T, batched bool) {
	const ctx, clients, perClient = 80, 6, 5
	slots := newFakeSlots(t, 3, ctx)
	if batched {
		slots.rows, slots.maxRun = 5, 2
	}
	slots.delay = time.Millisecond // so that requests overlap
	srv, _, url := startSlots(t, slots, Config{QueueSize: clients}, fakeText{})
	type want struct {
		text, finish string
		tokens       int
	}
	wants := make([]want, len(genCases))
	for i, g := range genCases {
		wants[i].text, wants[i].finish, wants[i].tokens = reference(t, g.prompt, g.chat, sample.Options{Temperature: g.temperature, Seed: uint64(g.seed)}, g.maxTokens, ctx, g.stops)
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range perClient {
				k := (c*perClient + r) % len(genCases)
				text, finish, tokens := genCases[k].do(t, url, (c+r)%2 == 0)
				if w := wants[k]; text != w.text || finish != w.finish || tokens != w.tokens {
					t.Errorf("client %d request %d (case %d): %q (%s, %d), alone %q (%s, %d)", c, r, k, text, finish, tokens, w.text, w.finish, w.tokens)
				}
			}
		}()
	}
	wg.Wait()
	if slots.widest.Load() < 2 {
		t.Errorf("no decode step ran more than %d slots: the requests did not overlap", slots.widest.Load())
	}
	if batched && slots.mixed.Load() == 0 {
		t.Error("no step carried a piece of a prefill")
	}
	var b strings.Builder
	srv.metrics.write(&b)
	m := b.String()
	if v := metricValue(t, m, `llmc_requests_total{endpoint="completions",code="200"}`) + metricValue(t, m, `llmc_requests_total{endpoint="chat",code="200"}`); v != clients*perClient {
		t.Errorf("requests with status 200: %v, want %d", v, clients*perClient)
	}
	if v := metricValue(t, m, "llmc_prompt_cached_tokens_total"); v == 0 {
		t.Error("no prompt token came from a slot's cache, though prompts repeat")
	}
}

func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func TestPrefixReuse(t *testing.T) {
	_, _, url := start(t, 2, 64, Config{}, fakeText{})
	body := `{"model": "fake", "prompt": "abcdef", "max_tokens": 3, "temperature": 0}`
	cached := func() int {
		resp, b := post(t, url+"/v1/completions", body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var c completion
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c.Usage.PromptTokensDetails.CachedTokens
	}
	if got := cached(); got != 0 {
		t.Errorf("first request: %d cached tokens, want 0", got)
	}
	// All but the last prompt token, which must run to give logits.
	if got := cached(); got != 5 {
		t.Errorf("same prompt again: %d cached tokens, want 5", got)
	}
}

func TestMetricsFormat(t *testing.T) {
	_, _, url := start(t, 1, 64, Config{}, fakeText{})
	post(t, url+"/v1/completions", `{"model": "fake", "prompt": "abc", "max_tokens": 4, "temperature": 0}`)
	post(t, url+"/v1/completions", `{"model": "nope", "prompt": "abc"}`)
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	// Every sample line is NAME{LABELS} VALUE after its family's TYPE.
	sampleLine := regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eE]+(Inf)?$`)
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %q is not a Prometheus sample", line)
			continue
		}
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m[1], "")
		if !typed[m[1]] && !typed[base] {
			t.Errorf("sample %q comes before its # TYPE", line)
		}
	}
	for name, want := range map[string]float64{
		`llmc_requests_total{endpoint="completions",code="200"}`: 1,
		`llmc_requests_total{endpoint="completions",code="404"}`: 1,
		"llmc_prompt_tokens_total":                               3,
		"llmc_completion_tokens_total":                           4,
		"llmc_slots":                                             1,
		"llmc_slots_busy":                                        0,
		"llmc_queue_length":                                      0,
		"llmc_time_to_first_token_seconds_count":                 1,
		"llmc_time_per_output_token_seconds_count":               3,
		"llmc_decode_tokens_total":                               3,
	} {
		if got := metricValue(t, text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// streamUntilFirstChunk starts a streamed request and returns once its
// first text chunk arrived, with the function that aborts it.
func streamUntilFirstChunk(t *testing.T, url, body string) (func(), *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			cancel()
			t.Fatalf("reading the stream: %v", err)
		}
		if strings.HasPrefix(line, "data: {") {
			return func() { cancel(); resp.Body.Close() }, r
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDisconnectFreesSlot(t *testing.T) {
	srv, slots, url := start(t, 1, 4096, Config{}, fakeText{noEOS: true})
	slots.gate = make(chan struct{})
	go func() {
		for {
			select {
			case slots.gate <- struct{}{}:
				time.Sleep(time.Millisecond)
			case <-t.Context().Done():
				return
			}
		}
	}()
	// Without EOS, it would run for 4000 tokens without the disconnect.
	abort, _ := streamUntilFirstChunk(t, url, `{"model": "fake", "prompt": "abc", "max_tokens": 4000, "temperature": 0, "stream": true}`)
	if srv.metrics.busy.Load() != 1 {
		t.Fatalf("busy slots %d while streaming, want 1", srv.metrics.busy.Load())
	}
	abort()
	waitFor(t, "the slot is free", func() bool { return srv.metrics.busy.Load() == 0 })
	if got := srv.metrics.cancelled.Load(); got != 1 {
		t.Errorf("cancelled %d, want 1", got)
	}
	// The slot serves the next request.
	resp, b := post(t, url+"/v1/completions", `{"model": "fake", "prompt": "abc", "max_tokens": 3, "temperature": 0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after the disconnect: status %d: %s", resp.StatusCode, b)
	}
}

func TestQueueFull(t *testing.T) {
	srv, slots, url := start(t, 1, 4096, Config{QueueSize: 1}, fakeText{})
	slots.gate = make(chan struct{}) // no step runs until the test says so
	body := `{"model": "fake", "prompt": "abc", "max_tokens": 2, "temperature": 0}`
	results := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := post(t, url+"/v1/completions", body)
			results <- resp.StatusCode
		}()
		// The first takes the slot (and blocks on its first step), the
		// second waits in the queue.
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, "one request runs and one waits", func() bool {
		return srv.metrics.busy.Load() == 1 && srv.metrics.queueLen.Load() == 1
	})
	resp, b := post(t, url+"/v1/completions", body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("with the queue full: status %d, Retry-After %q, want 429 with Retry-After: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	close(slots.gate)
	for range 2 {
		if s := <-results; s != 200 {
			t.Errorf("a queued request got %d, want 200", s)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	_, slots, url := start(t, 1, 4096, Config{RequestTimeout: 100 * time.Millisecond}, fakeText{noEOS: true})
	slots.gate = make(chan struct{})
	defer close(slots.gate)
	resp, b := post(t, url+"/v1/completions", `{"model": "fake", "prompt": "abc", "max_tokens": 50, "temperature": 0}`)
	var e errorBody
	json.Unmarshal(b, &e)
	if resp.StatusCode != 504 || !strings.Contains(e.Error.Message, "timed out") {
		t.Errorf("status %d, body %s; want 504 timed out", resp.StatusCode, b)
	}
}

func TestShutdown(t *testing.T) {
	for _, c := range []struct {
		name      string
		grace     time.Duration
		stepDelay time.Duration
		maxTokens int
		status    int // of the in-flight request
		cancelled int
	}{
		{"finishes within grace", 5 * time.Second, time.Millisecond, 20, 200, 0},
		{"cancelled after grace", 200 * time.Millisecond, 5 * time.Millisecond, 4000, 503, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			slots := newFakeSlots(t, 1, 4096)
			slots.gate = make(chan struct{})
			stopGate := make(chan struct{})
			defer close(stopGate)
			go func() {
				for {
					select {
					case slots.gate <- struct{}{}:
						time.Sleep(c.stepDelay)
					case <-stopGate:
						return
					}
				}
			}()
			srv := New(Config{})
			if err := srv.SetModel(&Model{Name: fakeName, Slots: slots, Text: fakeText{noEOS: true}}); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv.Start(ln)
			url := "http://" + ln.Addr().String()
			status := make(chan int, 1)
			go func() {
				resp, _ := post(t, url+"/v1/completions", fmt.Sprintf(`{"model": "fake", "prompt": "abc", "max_tokens": %d, "temperature": 0}`, c.maxTokens))
				status <- resp.StatusCode
			}()
			waitFor(t, "the request runs", func() bool { return srv.metrics.busy.Load() == 1 })
			cancelled, err := srv.Shutdown(c.grace)
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if cancelled != c.cancelled {
				t.Errorf("Shutdown cancelled %d, want %d", cancelled, c.cancelled)
			}
			if got := <-status; got != c.status {
				t.Errorf("the in-flight request got %d, want %d", got, c.status)
			}
			if _, err := http.Get(url + "/health"); err == nil {
				t.Error("the server still accepts connections after Shutdown")
			}
		})
	}
}
