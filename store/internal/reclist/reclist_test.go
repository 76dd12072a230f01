package reclist_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/kilnbuild/kiln/store/internal/reclist"
)

const magic = "test-list\n"

func recs(n int, tag string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "%s%d", tag, i)
	}
	return out
}

// TestChain: differences over differences read back as the lists they
// were made from, and a chain refuses a base of the wrong depth, a copy
// outside its base and a missing base.
func TestChain(t *testing.T) {
	base := recs(10, "a")
	stored := map[string][]byte{"b0": reclist.Encode(magic, base)}
	open := func(name string) ([]byte, error) {
		if d, ok := stored[name]; ok {
			return d, nil
		}
		return nil, os.ErrNotExist
	}
	want := base
	for i := 1; i <= reclist.MaxDepth+1; i++ {
		// Replace record i-1.
		next := append(append(append([][]byte{}, want[:i-1]...), fmt.Appendf(nil, "new%d", i)), want[i:]...)
		ops := []reclist.Op{{Rec: next[i-1]}}
		if i > 1 {
			ops = append([]reclist.Op{{From: 0, N: i - 1}}, ops...)
		}
		ops = append(ops, reclist.Op{From: i, N: len(want) - i})
		data := reclist.EncodeDelta(magic, fmt.Sprint("b", i-1), i-1, len(next), ops)
		got, depth, err := reclist.Decode(magic, data, open)
		if i > reclist.MaxDepth {
			if err == nil {
				t.Fatalf("a chain %d deep read", i)
			}
			break
		}
		if err != nil || depth != i || !equal(got, next) {
			t.Fatalf("depth %d: %q (depth %d, %v), want %q", i, got, depth, err, next)
		}
		if b, err := reclist.Base(data[:min(len(data), reclist.HeaderSize)]); err != nil || b != fmt.Sprint("b", i-1) {
			t.Fatalf("Base: %q %v", b, err)
		}
		stored[fmt.Sprint("b", i)] = data
		want = next
	}
	for name, data := range map[string][]byte{
		"too deep":     reclist.EncodeDelta(magic, "b2", 0, 1, []reclist.Op{{From: 0, N: 1}}),
		"outside":      reclist.EncodeDelta(magic, "b0", 0, 11, []reclist.Op{{From: 0, N: 11}}),
		"missing base": reclist.EncodeDelta(magic, "nope", 0, 1, []reclist.Op{{From: 0, N: 1}}),
		"short count":  reclist.EncodeDelta(magic, "b0", 0, 2, []reclist.Op{{From: 0, N: 1}}),
		"other magic":  reclist.Encode("other\n", base),
	} {
		if _, _, err := reclist.Decode(magic, data, open); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "missing base" && !errors.Is(err, reclist.ErrCorrupt) {
			t.Errorf("%s: %v is not ErrCorrupt", name, err)
		}
	}
}

func equal(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// FuzzDecode: no input crashes Decode, and what it accepts re-encodes to
// itself when stored whole.
func FuzzDecode(f *testing.F) {
	whole := reclist.Encode(magic, recs(3, "x"))
	f.Add(whole)
	f.Add(reclist.EncodeDelta(magic, "w", 0, 2, []reclist.Op{{From: 1, N: 1}, {Rec: []byte("r")}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := reclist.Decode(magic, data, func(string) ([]byte, error) { return whole, nil })
		if err != nil {
			return
		}
		if len(data) > len(magic) && data[len(magic)] == 'W' && !bytes.Equal(reclist.Encode(magic, got), data) {
			t.Errorf("accepted %q, re-encodes differently", data)
		}
	})
}
