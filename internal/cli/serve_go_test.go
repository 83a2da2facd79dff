package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
)

// TestServeGoBackendSlots serves a Go-backend artifact compiled with
// --slots 3 from its own executable, whose slots decode together through
// the generated decode_batch entry point, and checks that six requests
// sent at once each get what the same executable's generate gives for its
// prompt alone.
func TestServeGoBackendSlots(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable")
	}
	art := filepath.Join(t.TempDir(), "s.llmc")
	requireOK(t, llmc(t, "compile", model(t, "stories260K"), "--backend", "go", "--slots", "3", "--max-seq", "128", "-o", art, "--quiet"))
	bin := filepath.Join(art, compiler.GoBinary)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	srv := exec.Command(bin, "serve", art, "--addr", addr, "--slots", "3", "--quiet", "--model-name", "s")
	var stderr bytes.Buffer
	srv.Stderr = &stderr
	require.NoError(t, srv.Start())
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	url := "http://" + addr
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		require.Less(t, time.Since(start), 30*time.Second, "the server did not get ready: %s", stderr.String())
	}

	type req struct {
		prompt      string
		temperature float64
		seed        int
	}
	reqs := []req{{"Once upon a time", 0, 0}, {"The little dog", 0, 0}, {"One day", 0.8, 4},
		{"Lily and Ben went to the park", 1, 7}, {"Once upon a time, there was", 0.8, 2}, {"The sun", 0, 0}}
	const maxTokens = 30
	want := make([]string, len(reqs))
	for i, r := range reqs {
		out, err := exec.Command(bin, "generate", art, "--prompt", r.prompt, "--max-new-tokens", strconv.Itoa(maxTokens),
			"--temperature", fmt.Sprint(r.temperature), "--seed", strconv.Itoa(r.seed), "--format", "json", "--quiet").Output()
		require.NoError(t, err)
		var g struct{ Text string }
		require.NoError(t, json.Unmarshal(out, &g))
		want[i] = g.Text
	}
	got := make([]string, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]any{"model": "s", "prompt": r.prompt, "max_tokens": maxTokens,
				"temperature": r.temperature, "seed": r.seed})
			resp, err := http.Post(url+"/v1/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var c struct{ Choices []struct{ Text string } }
			if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || len(c.Choices) != 1 {
				t.Errorf("request %d: status %d, %v", i, resp.StatusCode, err)
				return
			}
			got[i] = c.Choices[0].Text
		}()
	}
	wg.Wait()
	for i := range reqs {
		require.Equal(t, want[i], got[i], "request %d (%+v)", i, reqs[i])
	}
}
