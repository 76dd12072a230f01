package modespec

import "testing"

func TestApply(t *testing.T) {
	// Expected values checked against GNU chmod (coreutils 9.1) with umask 022.
	tests := []struct {
		mode  string
		cur   uint32
		isDir bool
		want  uint32
	}{
		{"0755", 0o644, false, 0o755},
		{"644", 0o4755, false, 0o644},
		{"755", 0o2700, true, 0o2755}, // directories keep setgid
		{"00755", 0o2700, true, 0o755},
		{"4755", 0o644, false, 0o4755},
		{"u+x", 0o644, false, 0o744},
		{"+x", 0o644, false, 0o755},
		{"+w", 0o444, false, 0o644}, // umask 022 keeps group/other write off
		{"a+w", 0o444, false, 0o666},
		{"go-rwx", 0o755, false, 0o700},
		{"u=rw,go=r", 0o777, false, 0o644},
		{"a=rX", 0o700, true, 0o555},
		{"a=rX", 0o600, false, 0o444},
		{"a=rX", 0o700, false, 0o555},
		{"g=u", 0o740, false, 0o770},
		{"o=g", 0o750, false, 0o755},
		{"u+s", 0o755, false, 0o4755},
		{"g+s", 0o755, true, 0o2755},
		{"+t", 0o777, true, 0o1777},
		{"o+t", 0o777, true, 0o1777},
		{"u=rwx", 0o2755, true, 0o2755}, // "=" keeps a directory's setgid
		{"u=rwx", 0o4755, false, 0o755}, // but not a file's
		{"u+r-w", 0o200, false, 0o400},
		{"=", 0o755, false, 0},
		{"+s", 0o755, false, 0o6755},
		{"o+t", 0o644, false, 0o1644},
		{"u+t", 0o755, true, 0o755}, // "t" only counts for "o" or "a"
		{"+X", 0o644, false, 0o644},
	}
	for _, tt := range tests {
		sp, err := Parse(tt.mode)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.mode, err)
			continue
		}
		if got := sp.Apply(tt.cur, tt.isDir); got != tt.want {
			t.Errorf("%q on %04o (dir %v) = %04o, want %04o", tt.mode, tt.cur, tt.isDir, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"", "8", "07778", "u", "u+q", "x+r", "u+r,", "12345678"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded", s)
		}
	}
}
