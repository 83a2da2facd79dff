// Command llmc compiles Hugging Face transformer models ahead of time and
// shows their graph IR. Run "llmc help" for its commands.
package main

import (
	"os"

	"github.com/llmc-dev/llmc"
	"github.com/llmc-dev/llmc/internal/cli"
)

func main() { os.Exit(cli.LlmcWithSource(llmc.Source(), os.Args[1:], os.Stdout, os.Stderr)) }
