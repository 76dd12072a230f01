package engine

import (
	"strings"
	"testing"
)

func TestLogBuffer(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		writes []string
		want   string
	}{
		{name: "under the limit", limit: 16, writes: []string{"a\n", "b\n"}, want: "a\nb\n"},
		{name: "exactly the limit", limit: 8, writes: []string{"abc\n", "def\n"}, want: "abc\ndef\n"},
		{
			name: "keeps whole lines at both ends", limit: 16,
			writes: []string{"one\n", "two\n", "three\n", "four\n", "five\n", "six\n"},
			// head holds "one\ntwo\n"; the tail's last 8 bytes are
			// "ive\nsix\n", of which only "six\n" is a whole line.
			want: "one\ntwo\n[kiln: 16 bytes of output dropped here]\nsix\n",
		},
		{
			name: "one huge write", limit: 8, writes: []string{"aaa\nbbb\nccc\nddd\n"},
			want: "aaa\n[kiln: 8 bytes of output dropped here]\nddd\n",
		},
		{
			name: "no newline to cut at", limit: 8, writes: []string{strings.Repeat("x", 20)},
			want: "xxxx\n[kiln: 12 bytes of output dropped here]\nxxxx",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLogBuffer(tt.limit)
			for _, w := range tt.writes {
				n, err := l.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := string(l.Bytes()); got != tt.want {
				t.Errorf("Bytes() = %q, want %q", got, tt.want)
			}
		})
	}
}
