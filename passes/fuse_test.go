package passes

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/llmc-dev/llmc/ir"
)

// TestFusionFactsFromOpTable pins the op facts fuse-kernels reads from the
// op table to the ones it kept in its own maps before they moved there:
// which ops join a kernel as its epilogue, and the kernel kind each
// anchor forms. The golden tests check that the kernels formed are
// unchanged; this names the facts, so a change to one is deliberate.
func TestFusionFactsFromOpTable(t *testing.T) {
	epilogue := map[ir.Op]bool{
		ir.OpSlice: true, ir.OpReshape: true, ir.OpRoPE: true, ir.OpKVWrite: true,
		ir.OpSiLU: true, ir.OpGELUTanh: true, ir.OpMul: true, ir.OpAdd: true,
		ir.OpScale: true, ir.OpSoftcap: true,
	}
	kinds := map[ir.Op]string{
		ir.OpLinear: "matmul", ir.OpAttention: "attention", ir.OpEmbedding: "embedding", ir.OpRMSNorm: "rms_norm",
	}
	for op := ir.Op(1); !strings.HasPrefix(op.String(), "op("); op++ {
		info := op.Info()
		assert.Equal(t, epilogue[op], info.Epilogue, "%s: Epilogue", op)
		assert.Equal(t, kinds[op], info.KernelKind, "%s: KernelKind", op)
	}
	// fuse-kernels anchors kernels on exactly the ops with a kernel kind.
	assert.Len(t, kernelAnchors, len(kinds))
	for _, op := range kernelAnchors {
		assert.NotEmpty(t, op.Info().KernelKind, "%s anchors kernels but has no KernelKind", op)
	}
	// Matmuls come before norms, so that they absorb their norm prologue.
	assert.Equal(t, ir.OpLinear, kernelAnchors[0])
}
