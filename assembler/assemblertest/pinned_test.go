package assemblertest

import (
	"strings"
	"testing"
)

// TestGoldenCheck: other bytes under a recorded version fail, saying to
// bump Version() and then -update; a version without digests fails
// without -update and is recorded with it; -update never rewrites a
// recorded digest; other tool versions skip.
func TestGoldenCheck(t *testing.T) {
	pin := func(sum, tool string) Pin {
		p := Pin{Files: map[string]string{"root.tar": sum}}
		if tool != "" {
			p.Tools = map[string]string{"mkfs.ext4": tool}
		}
		return p
	}
	golden := func() Golden {
		return Golden{"org.osbuild.tar": {"2": {"none": pin("sha256:aa", "")}}, "org.osbuild.rawfs": {"3": {"ext4": pin("sha256:ee", "mke2fs 1.47.0")}}}
	}
	for _, tc := range []struct {
		name, assembler, version, cs string
		got                          Pin
		update                       bool
		want                         verdict
		msg                          string
	}{
		{"same bytes", "org.osbuild.tar", "2", "none", pin("sha256:aa", ""), false, same, ""},
		{"bytes changed, version not", "org.osbuild.tar", "2", "none", pin("sha256:bb", ""), false, fail, `Version() is still "2"`},
		{"-update does not rewrite", "org.osbuild.tar", "2", "none", pin("sha256:bb", ""), true, fail, "Bump Version() of org.osbuild.tar, then run go test ./assembler -run TestPinnedOutputs -update"},
		{"version bumped, nothing recorded", "org.osbuild.tar", "3", "none", pin("sha256:bb", ""), false, fail, `Version() is "3", and no digest is recorded`},
		{"version bumped, -update", "org.osbuild.tar", "3", "none", pin("sha256:bb", ""), true, recorded, "recorded org.osbuild.tar version 3"},
		{"new case, -update", "org.osbuild.tar", "2", "gzip", pin("sha256:cc", ""), true, recorded, "case gzip"},
		{"other tool version", "org.osbuild.rawfs", "3", "ext4", pin("sha256:ff", "mke2fs 1.47.1"), false, skip, "mke2fs 1.47.0"},
		{"same tool version, other bytes", "org.osbuild.rawfs", "3", "ext4", pin("sha256:ff", "mke2fs 1.47.0"), true, fail, "Bump Version() of org.osbuild.rawfs"},
		{"new assembler", "org.osbuild.new", "1", "x", pin("sha256:11", ""), false, fail, "no digest is recorded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := golden()
			v, msg := g.check(tc.assembler, tc.version, tc.cs, tc.got, tc.update)
			if v != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("verdict %d %q, want %d with %q", v, msg, tc.want, tc.msg)
			}
			if old := golden(); tc.want != recorded && (len(g) != len(old) || len(g["org.osbuild.tar"]) != len(old["org.osbuild.tar"])) {
				t.Errorf("the golden file changed: %v", g)
			}
			if p := g[tc.assembler][tc.version][tc.cs]; tc.want == fail && tc.update && p.Files["root.tar"] == tc.got.Files["root.tar"] {
				t.Errorf("a recorded digest was rewritten: %v", p)
			}
			if tc.want == recorded && g[tc.assembler][tc.version][tc.cs].Files["root.tar"] != tc.got.Files["root.tar"] {
				t.Errorf("not recorded: %v", g)
			}
		})
	}
}
