package sample_test

import (
	"fmt"

	"github.com/llmc-dev/llmc/runtime/sample"
)

func ExampleSampler() {
	s, err := sample.New(sample.Options{Temperature: 0.7, TopK: 40, TopP: 0.95, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	logits := []float32{0.5, 9, 1, 8.5} // from the model's last position
	var history []int
	for range 5 {
		tok := s.Sample(logits, history)
		history = append(history, tok)
	}
	fmt.Println(len(history), history[0] == 1 || history[0] == 3)
	// Output: 5 true
}

func ExampleNew_invalid() {
	_, err := sample.New(sample.Options{Temperature: 1, TopP: 1.5})
	fmt.Println(err)
	// Output: sample: Options.TopP = 1.5: must be in (0, 1] (0 means unset)
}

func ExampleNLL() {
	// Perplexity of a sequence is exp of the mean NLL of each next token.
	logits := []float32{0, 0, 0, 0}
	fmt.Printf("%.4f\n", sample.NLL(logits, 2)) // ln 4
	// Output: 1.3863
}
