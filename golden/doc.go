// Package golden holds llmc's end-to-end compiler tests; it has no code
// of its own.
//
//   - golden_test.go runs every pass of passes.Pipeline() on small graphs
//     kept as txtar files under testdata/<pass>/<case>.txtar and compares
//     the printed result (see testdata/README.md). gen_test.go makes their
//     inputs from tiny synthetic model configs.
//   - numeric_test.go compiles each model of ../shared/models and checks
//     the artifact's logits against the eager interpreter, with every
//     optional pass disabled in turn and with a dynamic cache.
package golden
