package engine

import (
	"fmt"
	"strings"
	"testing"
)

// TestDeterminism runs a stage that prints the time, a map's iteration order
// and 32 bytes from crypto/rand: with the same id it must print the same
// twice, in different workers even, and the time must be SOURCE_DATE_EPOCH.
func TestDeterminism(t *testing.T) {
	const epoch = 1234567890
	run := func(e *Engine, id string) string {
		t.Helper()
		res, err := e.Run(t.Context(), Invocation{Name: "entropy", ID: id, Module: guest(t), Tree: t.TempDir(), Epoch: epoch})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return string(res.Log)
	}
	e1, e2 := newEngine(t, Config{}), newEngine(t, Config{})
	first := run(e1, "aa01")
	if again := run(e1, "aa01"); again != first {
		t.Errorf("same id, same worker:\n%s\nthen:\n%s", first, again)
	}
	if other := run(e2, "aa01"); other != first {
		t.Errorf("same id, another worker:\n%s\nthen:\n%s", first, other)
	}
	if want := fmt.Sprintf("unix %d\nnsec 0\n", epoch); !strings.HasPrefix(first, want) {
		t.Errorf("output %q does not start with the epoch %q", first, want)
	}
	different := run(e1, "aa02")
	random := func(s string) string { _, r, _ := strings.Cut(s, "random "); return r }
	if !strings.Contains(first, "maporder ") {
		t.Errorf("output %q lacks the map order", first)
	}
	if random(different) == random(first) || len(random(first)) != 64+1 {
		t.Errorf("random bytes for ids aa01 and aa02: %q and %q; want 32 different bytes each",
			random(first), random(different))
	}
}
