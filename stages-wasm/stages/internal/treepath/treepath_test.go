package treepath

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "/etc", want: "/etc"},
		{in: "etc/", want: "/etc"},
		{in: "tree:///etc/x", want: "/etc/x"},
		{in: "tree://etc//x/.", want: "/etc/x"},
		{in: "/", want: "/"},
		{in: "tree:///", want: "/"},
		{in: "", wantErr: true},
		{in: "tree://", wantErr: true},
		{in: "/etc/../x", wantErr: true},
		{in: "..", wantErr: true},
		{in: "http://x/y", wantErr: true},
		{in: "/a\x00b", wantErr: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := Parse("mount://root/etc"); !errors.Is(err, ErrMount) {
		t.Errorf("Parse(mount://) error = %v, want ErrMount", err)
	}
}

// memberRef is Member as it was written before its fast path: every name
// through strings.Split, path.Clean and path.Join.
func memberRef(prefix, name string) (string, error) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", ErrDotDot
		}
	}
	rel := strings.Trim(path.Clean("/"+name), "/")
	if rel == "" {
		return "", nil
	}
	return path.Join(prefix, rel), nil
}

func TestMember(t *testing.T) {
	for _, tt := range []struct {
		prefix, name, want string
		err                error
	}{
		{"/", "./etc/passwd", "/etc/passwd", nil},
		{"/", "etc/passwd", "/etc/passwd", nil},
		{"/", "/etc/passwd", "/etc/passwd", nil},
		{"/", "./usr/lib/", "/usr/lib", nil},
		{"/", "a//b/./c", "/a/b/c", nil},
		{"/", "./", "", nil},
		{"/", ".", "", nil},
		{"/", "/", "", nil},
		{"/srv", "./x/y", "/srv/x/y", nil},
		{"/srv", "x/", "/srv/x", nil},
		{"/srv", "./", "", nil},
		{"/", "../escape", "", ErrDotDot},
		{"/", "a/../../b", "", ErrDotDot},
		{"/", "a/..", "", ErrDotDot},
		{"/", "a/..b/c", "/a/..b/c", nil},
		{"/", ".../x", "/.../x", nil},
	} {
		got, err := Member(tt.prefix, tt.name)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("Member(%q, %q) = %q, %v; want %q, %v", tt.prefix, tt.name, got, err, tt.want, tt.err)
		}
	}
}

// FuzzMember holds Member to memberRef for any name, under the root and
// under a prefix.
func FuzzMember(f *testing.F) {
	for _, s := range []string{"./a/b", "a//b", "../x", "./", "a/./b/", "/x/../y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, prefix := range []string{"/", "/srv/root"} {
			got, err := Member(prefix, name)
			want, werr := memberRef(prefix, name)
			if got != want || !errors.Is(err, werr) || (err == nil) != (werr == nil) {
				t.Fatalf("Member(%q, %q) = %q, %v; reference %q, %v", prefix, name, got, err, want, werr)
			}
		}
	})
}
