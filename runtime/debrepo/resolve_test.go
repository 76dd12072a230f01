package debrepo

import (
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

func loadFixture(t testing.TB) []Package {
	t.Helper()
	f, err := os.Open("testdata/resolve/Packages")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkgs, err := ParsePackages(f)
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func requests(t testing.TB, names ...string) []Request {
	t.Helper()
	var out []Request
	for _, n := range names {
		r, err := ParseRequest(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func names(res *Resolution) []string {
	var out []string
	for _, p := range res.Packages {
		out = append(out, p.Name+"="+p.Version.String())
	}
	return out
}

func TestResolve(t *testing.T) {
	pkgs := loadFixture(t)
	const (
		libc  = "libc6=2.36-9+deb12u7"
		gcc   = "gcc-12-base=12.2.0-14"
		libgc = "libgcc-s1=12.2.0-14"
		mawk  = "mawk=1.3.4.20200120-3.1"
		gawk  = "gawk=1:5.2.1-2"
	)
	libcSet := []string{gcc, libc, libgc} // libc6 and libgcc-s1 Depend on each other
	tests := []struct {
		name      string
		req       []string
		required  bool
		essential bool
		want      []string
		wantErr   error
		errText   string // the whole message when set
		errHas    []string
	}{
		{name: "alternative: first installable", req: []string{"app-alt"},
			want: []string{"postfix-x=3.7", "app-alt=1.0"}},
		{name: "alternative: first when none chosen", req: []string{"app-alt2"},
			want: append(slices.Clone(libcSet), gawk, "app-alt2=1.0")},
		{name: "alternative: a requested one wins", req: []string{"mawk", "app-alt2"},
			want: append(slices.Clone(libcSet), mawk, "app-alt2=1.0")},
		{name: "alternative: one that conflicts with the set is passed over", req: []string{"conf-a", "alt-conf"},
			want: []string{"conf-a=1.0", "conf-c=1.0", "alt-conf=1.0"}},
		{name: "alternative: Depends on two, first taken", req: []string{"apt"},
			want: append([]string{"base-passwd=3.6.1"}, append(libcSet, "libapt-pkg6.0=2.6.1", "apt=2.6.1")...)},
		{name: "virtual: provider by Priority, Pre-Depends first", req: []string{"base-files"},
			want: append(slices.Clone(libcSet), mawk, "base-files=12.4+deb12u5")},
		{name: "virtual: provider already chosen wins", req: []string{"gawk", "base-files"},
			want: append(slices.Clone(libcSet), gawk, "base-files=12.4+deb12u5")},
		{name: "virtual: versioned Provides for a versioned Depends", req: []string{"app-vp"},
			want: []string{"libfoo-provider=2.0-1", "app-vp=1.0"}},
		{name: "virtual: unversioned Depends, providers by name", req: []string{"app-vp-any"},
			want: []string{"libfoo-old=1.0-1", "app-vp-any=1.0"}},
		{name: "virtual: requested by name", req: []string{"awk"}, wantErr: ErrUnsatisfiable,
			errHas: []string{"awk: is a virtual package (provided by gawk, mawk, original-awk)"}},
		{name: "multi-version: highest", req: []string{"tool"}, want: []string{"tool=2.0-1"}},
		{name: "multi-version: request constraint", req: []string{"tool (<< 2.0)"}, want: []string{"tool=1.0-1"}},
		{name: "multi-version: two requests of one name met together", req: []string{"tool", "tool (<< 2.0)", "tool"},
			want: []string{"tool=1.0-1"}},
		{name: "multi-version: two requests no version meets", req: []string{"tool (>= 2.0)", "tool (<< 2.0)"}, wantErr: ErrUnsatisfiable,
			errText: "tool (<< 2.0), tool (>= 2.0): no candidate (have 2.0-1, 1.0-1): unsatisfiable dependency"},
		{name: "multi-version: dependency constraint", req: []string{"app-old"},
			want: []string{"tool=1.0-1", "app-old=1.0"}},
		{name: "multi-version: chosen version does not fit", req: []string{"app-old", "tool"}, wantErr: ErrUnsatisfiable,
			errText: "app-old -> tool (<< 2.0): tool 2.0-1 is chosen: unsatisfiable dependency"},
		{name: "constraint: no version fits", req: []string{"tool (>= 3)"}, wantErr: ErrUnsatisfiable,
			errText: "tool (>= 3): no candidate (have 2.0-1, 1.0-1): unsatisfiable dependency"},
		{name: "missing dependency names the chain", req: []string{"python3-minimal"}, wantErr: ErrUnsatisfiable,
			errText: "python3-minimal -> libpython3.11-minimal (= 3.11.2-6) -> libssl3 (>= 3.0.0): no candidate (have 1.1.1): unsatisfiable dependency"},
		{name: "unknown package", req: []string{"no-such"}, wantErr: ErrUnsatisfiable,
			errText: "no-such: no candidate (no such package): unsatisfiable dependency"},
		{name: "conflicts", req: []string{"conf-a", "conf-b"}, wantErr: ErrConflict,
			errHas: []string{"conf-a (reached by conf-a) and conf-b (reached by conf-b)", "Conflicts: conf-b"}},
		{name: "breaks", req: []string{"brk-a", "brk-b"}, wantErr: ErrConflict,
			errHas: []string{"brk-a", "brk-b", "Breaks: brk-b (<< 2)"}},
		{name: "Pre-Depends before, against name order, inside a Depends cycle", req: []string{"aa-user"},
			want: []string{"zz-lib=1.0", "aa-user=1.0"}},
		{name: "Pre-Depends cycle", req: []string{"pc-a"}, wantErr: ErrPreDependsCycle, errHas: []string{"pc-a, pc-b"}},
		{name: "other architecture is no candidate", req: []string{"needs-arm"}, wantErr: ErrUnsatisfiable,
			errText: "needs-arm -> armonly: no candidate (no such package): unsatisfiable dependency"},
		{name: "foreign arch qualifier", req: []string{"needs-arm-q"}, wantErr: ErrUnsatisfiable,
			errHas: []string{"gcc-12-base:arm64: only amd64 packages are resolved"}},
		{name: ":any qualifier and arch all", req: []string{"anyuser"},
			want: []string{"data-all=1.0", gcc, "anyuser=1.0"}},
		{name: "required set", required: true,
			want: append([]string{"base-passwd=3.6.1"}, append(libcSet, mawk, "base-files=12.4+deb12u5", "passwd=1:4.13+dfsg1-1")...)},
		{name: "essential set", essential: true,
			want: append([]string{"base-passwd=3.6.1"}, append(libcSet, mawk, "base-files=12.4+deb12u5")...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Resolve(pkgs, requests(t, tc.req...), ResolveOptions{Architecture: "amd64", Required: tc.required, Essential: tc.essential})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if tc.errText != "" && err.Error() != tc.errText {
					t.Errorf("err =\n  %s\nwant\n  %s", err, tc.errText)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("err %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(res); !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			checkOrder(t, res)
		})
	}
}

// checkOrder checks the invariant the unpacker relies on: every package
// comes after whatever chosen package it Pre-Depends on.
func checkOrder(t *testing.T, res *Resolution) {
	t.Helper()
	pos := map[string]int{}
	for i, p := range res.Packages {
		pos[p.Name] = i
	}
	for i, p := range res.Packages {
		for _, rel := range p.PreDepends.Relations {
			for _, alt := range rel.Possibilities {
				if j, ok := pos[alt.Name]; ok && j > i {
					t.Errorf("%s at %d Pre-Depends on %s at %d", p.Name, i, alt.Name, j)
				}
			}
		}
	}
}

// TestResolveDeterministic shuffles the index and the request and expects
// the same bytes each time.
func TestResolveDeterministic(t *testing.T) {
	pkgs := loadFixture(t)
	req := []string{"apt", "base-files", "app-alt2", "anyuser", "app-vp-any", "aa-user", "tool"}
	want, err := Resolve(pkgs, requests(t, req...), ResolveOptions{Architecture: "amd64", Required: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		p := slices.Clone(pkgs)
		rng.Shuffle(len(p), func(a, b int) { p[a], p[b] = p[b], p[a] })
		q := slices.Clone(req)
		rng.Shuffle(len(q), func(a, b int) { q[a], q[b] = q[b], q[a] })
		got, err := Resolve(p, requests(t, q...), ResolveOptions{Architecture: "amd64", Required: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got), names(want)) {
			t.Fatalf("shuffle %d:\n got  %v\n want %v", i, names(got), names(want))
		}
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"busybox", "busybox", true},
		{"libc6 (>= 2.36)", "libc6 (>= 2.36)", true},
		{"libc6(>=2.36)", "libc6 (>= 2.36)", true},
		{"tool (<< 1:2.0~rc1)", "tool (<< 1:2.0~rc1)", true},
		{"a | b", "", false},
		{"a, b", "", false},
		{"libc6:amd64", "", false},
		{"libc6 [amd64]", "", false},
		{"Libc6", "", false},
		{"", "", false},
		{"x", "", false},
		{"libc6 (>= )", "", false},
		{"libc6 (> 2)", "", false},
		{"libc6 (>= 2.36", "", false},
	} {
		r, err := ParseRequest(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseRequest(%q) err = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseRequest(%q) err = %v, want ErrMalformed", tc.in, err)
			}
			continue
		}
		if r.String() != tc.want {
			t.Errorf("ParseRequest(%q) = %q, want %q", tc.in, r, tc.want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"busybox", "libc6 (>= 2.36)", "a | b", "x:any", "t (<< 1:2~)", "p [amd64] <!nocheck>", "${shlibs:Depends}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequest(s)
		if err != nil {
			return
		}
		if !validPackageName(r.Name) {
			t.Fatalf("accepted name %q", r.Name)
		}
		// What a lock records must read back as itself.
		r2, err := ParseRequest(r.String())
		if err != nil || r2.String() != r.String() {
			t.Fatalf("%q -> %q -> %q, %v", s, r, r2, err)
		}
	})
}
