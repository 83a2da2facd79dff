package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/tokenizer"
)

// The checks below run before llmc compile builds anything, so that a bad
// -o, --dump-dir or tokenizer file is refused at once, not after a compile
// of minutes (and, for --dump-dir, not after the IR has been printed).

// checkOutput refuses an -o that exists and is not an llmc artifact, which
// the compile would refuse to replace only once it has written the new
// one (artifact.WriteDir's rule).
func checkOutput(out string) error {
	if err := artifact.CheckReplaceable(out); err != nil {
		return fmt.Errorf("-o %w", err)
	}
	return nil
}

// checkDumpDir refuses a --dump-dir that is not a folder and cannot be
// made one: a file, a path under a file, a folder it may not write in.
// It leaves nothing behind (a probe file is made and removed): the passes
// create the folder as they dump.
func checkDumpDir(dir string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		if err == nil {
			if st.IsDir() {
				break
			}
			if p == filepath.Clean(dir) {
				return fmt.Errorf("--dump-dir %s exists and is not a folder", dir)
			}
			return fmt.Errorf("--dump-dir %s: %s is not a folder", dir, p)
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("--dump-dir %s: %w", dir, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("--dump-dir %s: %w", dir, err)
		}
		p = parent
	}
	// p is the folder itself or the nearest one above it that exists: the
	// dumps, or the folders that hold them, are made in it.
	f, err := os.CreateTemp(p, ".llmc-dump-dir-check-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the probe's name says nothing to the user
		}
		return fmt.Errorf("--dump-dir %s: cannot write in %s: %w", dir, p, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("--dump-dir %s: removing the probe %s: %w", dir, name, err)
	}
	return nil
}

// checkText loads the model folder's tokenizer (tokenizer.json, with
// tokenizer_config.json) and parses its chat template (chat_template.jinja,
// or tokenizer_config.json's chat_template), as llmrun will from the
// artifact's copies, and returns what fails as warnings naming the model
// folder's file, which would otherwise surface against the copy at the
// first --prompt. They are warnings, not errors: the weights compile and
// run all the same (with --ids, or --tokenizer DIR), and a template may be
// real Jinja beyond what llmrun renders. A folder without a tokenizer or
// a template has nothing to warn of. Loading a tokenizer reads only its
// files, a second at most for the largest vocabularies.
func checkText(modelDir string) []string {
	var warn []string
	if st, err := os.Stat(filepath.Join(modelDir, "tokenizer.json")); err == nil && !st.IsDir() {
		if _, err := tokenizer.Load(modelDir); err != nil {
			warn = append(warn, fmt.Sprintf("the model's tokenizer, which the artifact carries, does not load: %v; llmrun will take --ids or --tokenizer DIR, not --prompt", err))
		}
	}
	if _, err := chattemplate.Load(modelDir); err != nil && !errors.Is(err, chattemplate.ErrNoTemplate) {
		warn = append(warn, fmt.Sprintf("the model's chat template, which the artifact carries, does not parse: %v; llmrun chat and serve's chat completions will refuse it", err))
	}
	return warn
}
