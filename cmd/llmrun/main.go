// Command llmrun runs models (Hugging Face folders or llmc artifacts):
// generation, scoring and benchmarks. Run "llmrun help" for its commands.
package main

import (
	"os"

	"github.com/llmc-dev/llmc/internal/cli/llmruncmd"
)

func main() { os.Exit(llmruncmd.Run(os.Args[1:], os.Stdout, os.Stderr)) }
