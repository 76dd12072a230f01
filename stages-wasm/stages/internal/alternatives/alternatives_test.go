package alternatives

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

var awkCalls = [][]Install{
	{
		{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/mawk", Priority: 5, Slaves: []Slave{
			{"/usr/share/man/man1/awk.1.gz", "awk.1.gz", "/usr/share/man/man1/mawk.1.gz"},
			{"/usr/bin/nawk", "nawk", "/usr/bin/mawk"},
		}},
		{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/gawk", Priority: 5, Slaves: []Slave{
			{"/usr/bin/nawk", "nawk", "/usr/bin/gawk"},
		}},
		{Link: "/bin/mt", Name: "mt", Path: "/bin/mt-gnu", Priority: 10},
	},
	{
		{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/zawk", Priority: 5, Slaves: []Slave{
			{"/usr/share/man/man1/awk.1.gz", "awk.1.gz", "/usr/share/man/man1/zawk.1.gz"},
		}},
		{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/mawk", Priority: 7, Slaves: []Slave{
			{"/usr/share/man/man1/awk.1.gz", "awk.1.gz", "/usr/share/man/man1/mawk.1.gz"},
			{"/usr/bin/nawk", "nawk", "/usr/bin/mawk"},
		}},
		{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/gawk", Priority: 6},
	},
}

// treeFiles exist in the test trees; zawk's man page does not, so its
// slave is skipped.
var treeFiles = []string{"/usr/bin/mawk", "/usr/bin/gawk", "/usr/bin/zawk", "/usr/share/man/man1/mawk.1.gz", "/bin/mt-gnu"}

func mkTree(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"/etc/alternatives", "/var/lib/dpkg/alternatives", "/usr/share/man/man1", "/bin", "/usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range treeFiles {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func links(t *testing.T, root string) []Link {
	var ls []Link
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(p)
		ls = append(ls, Link{"/" + mustRel(t, root, p), target})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ls, func(a, b Link) int { return cmpStr(a.Path, b.Path) })
	return ls
}

func mustRel(t *testing.T, root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestAgainstUpdateAlternatives runs the same calls through dpkg's
// update-alternatives --root and compares the administrative files and the
// symlinks with what Set computes.
func TestAgainstUpdateAlternatives(t *testing.T) {
	ua, err := exec.LookPath("update-alternatives")
	if err != nil {
		t.Skip("needs dpkg's update-alternatives: " + err.Error())
	}
	for i, calls := range awkCalls {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			real := mkTree(t)
			ours := mkTree(t)
			s := NewSet()
			for _, c := range calls {
				args := []string{"--root", real, "--install", c.Link, c.Name, c.Path, strconv.Itoa(c.Priority)}
				for _, sl := range c.Slaves {
					args = append(args, "--slave", sl.Link, sl.Name, sl.Path)
				}
				if out, err := exec.Command(ua, args...).CombinedOutput(); err != nil {
					t.Fatalf("update-alternatives %v: %v\n%s", args, err, out)
				}
				if err := s.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			exists := func(p string) bool { _, err := os.Lstat(filepath.Join(ours, p)); return err == nil }
			for _, n := range s.Names() {
				g := s.Groups[n]
				want, err := os.ReadFile(filepath.Join(real, "var/lib/dpkg/alternatives", n))
				if err != nil {
					t.Fatal(err)
				}
				if got := g.AdminFile(); !bytes.Equal(got, want) {
					t.Errorf("%s admin file:\n%q\nwant\n%q", n, got, want)
				}
				for _, l := range g.Links("/etc/alternatives", exists) {
					if err := os.Symlink(l.Target, filepath.Join(ours, l.Path)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got, want := links(t, ours), links(t, real); !slices.Equal(got, want) {
				t.Errorf("links\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestAddRefuses(t *testing.T) {
	tests := []struct {
		name  string
		calls []Install
	}{
		{"relative link", []Install{{Link: "usr/bin/x", Name: "x", Path: "/a"}}},
		{"unclean path", []Install{{Link: "/usr/bin/x", Name: "x", Path: "/a/../b"}}},
		{"name with slash", []Install{{Link: "/x", Name: "a/b", Path: "/a"}}},
		{"other master link", []Install{{Link: "/x", Name: "x", Path: "/a"}, {Link: "/y", Name: "x", Path: "/b"}}},
		{"slave as master", []Install{{Link: "/x", Name: "x", Path: "/a", Slaves: []Slave{{"/s", "s", "/b"}}}, {Link: "/s", Name: "s", Path: "/c"}}},
		{"master as slave", []Install{{Link: "/x", Name: "x", Path: "/a"}, {Link: "/y", Name: "y", Path: "/b", Slaves: []Slave{{"/x", "x", "/c"}}}}},
		{"slave in two groups", []Install{{Link: "/x", Name: "x", Path: "/a", Slaves: []Slave{{"/s", "s", "/b"}}}, {Link: "/y", Name: "y", Path: "/c", Slaves: []Slave{{"/s", "s", "/d"}}}}},
		{"line break", []Install{{Link: "/x", Name: "x", Path: "/a\nb"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSet()
			var err error
			for _, c := range tt.calls {
				if err = s.Add(c); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
		})
	}
}
