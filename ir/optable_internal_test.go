package ir

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestOpTableAttrSpecs: optional attributes have a default of their kind,
// required ones none, and no op declares an attribute twice.
func TestOpTableAttrSpecs(t *testing.T) {
	for op := OpInvalid + 1; op < numOps; op++ {
		info := op.Info()
		seen := map[string]bool{}
		for _, s := range info.Attrs {
			assert.False(t, seen[s.Name], "%s declares %s twice", info.Name, s.Name)
			seen[s.Name] = true
			if s.Required {
				assert.Nil(t, s.Default, "%s.%s", info.Name, s.Name)
				continue
			}
			k, ok := attrKindOf(s.Default)
			assert.True(t, ok && k == s.Kind, "%s.%s: default %#v is not a %s", info.Name, s.Name, s.Default, s.Kind)
		}
	}
}

// TestCheckAttrKinds checks every value kind against every attribute kind
// on a made-up op: a value fits its own kind, and ints fit floats (also
// in lists); nothing else fits.
func TestCheckAttrKinds(t *testing.T) {
	info := &OpInfo{Name: "probe", Attrs: []AttrSpec{
		opt("i", 0), opt("f", 0.0), opt("b", false), opt("s", ""), opt("is", []int(nil)), opt("fs", []float64(nil)),
	}}
	values := map[string]any{"i": 1, "f": 1.5, "b": true, "s": "x", "is": []int{1}, "fs": []float64{1.5}}
	fits := map[[2]string]bool{{"i", "f"}: true, {"is", "fs"}: true}
	for vk, v := range values {
		for _, spec := range info.Attrs {
			err := checkAttrValues(info, Attrs{spec.Name: v})
			if vk == spec.Name || fits[[2]string{vk, spec.Name}] {
				assert.NoError(t, err, "%s value for %s attribute", vk, spec.Name)
			} else {
				assert.ErrorContains(t, err, "has the wrong type (want "+spec.Kind.String()+")", "%s value for %s attribute", vk, spec.Name)
			}
		}
	}
	assert.ErrorContains(t, checkAttrValues(info, Attrs{"i": []string{"a"}}), "has the wrong type")
	assert.ErrorContains(t, checkAttrValues(info, Attrs{"i": int64(1)}), "has the wrong type")
	assert.ErrorContains(t, checkAttrValues(info, Attrs{"x": 1}), `probe has no attribute "x"`)
	assert.ErrorContains(t, checkAttrValues(&OpInfo{Attrs: []AttrSpec{req("r", AttrInt)}}, nil), "missing attribute r")
}
