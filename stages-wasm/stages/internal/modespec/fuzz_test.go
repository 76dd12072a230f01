package modespec

import (
	"strconv"
	"testing"
)

// FuzzParse: any mode string (an option of org.osbuild.chmod) either fails
// to parse or gives a Spec whose Apply stays within 07777 for any current
// mode; a numeric mode sets exactly its bits on a file.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0755", "644", "00755", "4755", "u+x", "+x", "+w", "a+w", "go-rwx", "u=rw,go=r",
		"a=rX", "g=u", "o=g", "u+s", "g+s", "+t", "a+t", "u-s,g=", "=", "u", ",", "u+x,", "ug=rwx-w+X", "7777", "17777", "8", ""} {
		f.Add(s, uint32(0o644), false)
		f.Add(s, uint32(0o7777), true)
	}
	f.Fuzz(func(t *testing.T, s string, cur uint32, isDir bool) {
		sp, err := Parse(s)
		if err != nil {
			return
		}
		got := sp.Apply(cur, isDir)
		if got&^0o7777 != 0 {
			t.Errorf("Parse(%q).Apply(%o, %v) = %o, past 07777", s, cur, isDir, got)
		}
		if again := sp.Apply(cur, isDir); again != got {
			t.Errorf("Parse(%q).Apply(%o, %v) gives %o, then %o", s, cur, isDir, got, again)
		}
		if n, err := strconv.ParseUint(s, 8, 32); err == nil && !isDir && got != uint32(n) {
			t.Errorf("numeric %q on a file gives %o", s, got)
		}
	})
}
