package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

type greetOpts struct {
	Greeting string `json:"greeting"`
	Count    int    `json:"count"`
}

func TestDecodeOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    greetOpts
		wantErr string // substring; empty means success
	}{
		{name: "fields", in: `{"greeting":"hi","count":2}`, want: greetOpts{"hi", 2}},
		{name: "empty keeps defaults", in: " \n", want: greetOpts{"default", 0}},
		{name: "malformed names offset", in: `{"greeting": hi}`, wantErr: "at byte 14"},
		{name: "wrong type names field", in: `{"count":"two"}`, wantErr: "greetOpts.count"},
		{name: "trailing data", in: `{} {}`, wantErr: "after top-level value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := greetOpts{Greeting: "default"}
			err := DecodeOptions(strings.NewReader(tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeOptions(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeOptions(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("DecodeOptions(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

type sizeOpts struct {
	Size  int `json:"size"`
	Users map[string]struct {
		Name   string `json:"name"`
		Groups []struct {
			ID int `json:"id"`
		} `json:"groups"`
	} `json:"users"`
	Raw   json.RawMessage `json:"raw"`
	Any   any             `json:"any"`
	Inner *struct {
		Keep bool `json:"keep"`
	} `json:"inner"`
	embedded
	Untagged string
	Skipped  string `json:"-"`
}

type embedded struct {
	Promoted string `json:"promoted"`
}

// TestDecodeOptionsExactNames is issue 10 item 10: encoding/json matches
// member names case-insensitively, with Unicode folding, so "ſize" (U+017F)
// or "SIZE" reached the field "size" although the schema, which reads names
// exactly, had checked only a "size" that was absent; and a duplicate key
// let the schema see one value and the stage the other. Each must be an
// error naming the option.
func TestDecodeOptionsExactNames(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"long s", `{"ſize": 99999}`, `option "ſize": no such option (names are matched exactly; the option is "size")`},
		{"upper case", `{"SIZE": 99999}`, `option "SIZE": no such option (names are matched exactly; the option is "size")`},
		{"kelvin sign", `{"inner":{"\u212aeep":true}}`, "option \"inner.\u212aeep\": no such option (names are matched exactly; the option is \"keep\")"},
		{"duplicate key", `{"size": 1, "size": 99999}`, `option "size": given twice`},
		{"duplicate map key", `{"users":{"a":{},"a":{"name":"root"}}}`, `option "users.a": given twice`},
		{"duplicate inside any", `{"any":{"x":1,"x":2}}`, `option "any.x": given twice`},
		{"duplicate inside raw", `{"raw":{"x":1,"x":2}}`, `option "raw.x": given twice`},
		{"unknown key", `{"size": 1, "later": true}`, `option "later": no such option`},
		{"unknown nested", `{"inner":{"keep":true,"drop":1}}`, `option "inner.drop": no such option`},
		{"skipped field", `{"Skipped":"x"}`, `option "Skipped": no such option`},
		{"field name in wrong case", `{"untagged":"x"}`, `option "untagged": no such option (names are matched exactly; the option is "Untagged")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got sizeOpts
			err := DecodeOptions(strings.NewReader(tt.in), &got)
			if err == nil {
				t.Fatalf("DecodeOptions(%s) = %+v, want an error", tt.in, got)
			}
			want := strings.ReplaceAll(tt.wantErr, `\u212a`, "\u212a")
			want = strings.ReplaceAll(want, `\u212a`, "K")
			if !strings.Contains(err.Error(), strings.ReplaceAll(want, `K`, "K")) || !errors.Is(err, ErrOption) {
				t.Errorf("DecodeOptions(%s) error = %v, want one containing %q wrapping ErrOption", tt.in, err, want)
			}
		})
	}

	ok := `{"size": 3, "users": {"a": {"name": "x", "groups": [{"id": 1}, {"id": 2}]}, "b": {}},
		"raw": {"y": [1, {"z": 2}]}, "any": [{"x": 1}, {"x": 2}], "inner": {"keep": true},
		"promoted": "p", "Untagged": "u"}`
	var got sizeOpts
	if err := DecodeOptions(strings.NewReader(ok), &got); err != nil {
		t.Fatalf("DecodeOptions(exact names): %v", err)
	}
	if got.Size != 3 || len(got.Users) != 2 || got.Users["a"].Groups[1].ID != 2 || !got.Inner.Keep ||
		got.Promoted != "p" || got.Untagged != "u" || string(got.Raw) != `{"y": [1, {"z": 2}]}` {
		t.Errorf("DecodeOptions(exact names) = %+v", got)
	}
	// A stage taking a map (org.osbuild.noop) takes any names, once each.
	var m map[string]any
	if err := DecodeOptions(strings.NewReader(`{"anything": {"SIZE": 1}, "ſize": 2}`), &m); err != nil {
		t.Errorf("DecodeOptions into a map: %v", err)
	}
}

func TestRunReportsErrors(t *testing.T) {
	tests := []struct {
		name       string
		stdin      string
		fn         func(greetOpts) error
		wantCode   int
		wantStderr string
	}{
		{name: "success", stdin: `{"greeting":"hi"}`, fn: func(o greetOpts) error {
			if o.Greeting != "hi" {
				return errors.New("greeting not decoded")
			}
			return nil
		}, wantCode: 0},
		{name: "stage error", stdin: `{}`, fn: func(greetOpts) error { return errors.New("disk full") },
			wantCode: ExitFailure, wantStderr: "org.test.greet: disk full\n"},
		{name: "bad options never call the stage", stdin: `{`, fn: func(greetOpts) error { panic("called") },
			wantCode: ExitFailure, wantStderr: "org.test.greet: decoding options: unexpected end of JSON input (at byte 1)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run("org.test.greet", strings.NewReader(tt.stdin), &stderr, tt.fn)
			if code != tt.wantCode || stderr.String() != tt.wantStderr {
				t.Errorf("run = %d, stderr %q; want %d, %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
		})
	}
}

// lower is an errno's message as explainEIO prints it.
func lower(e syscall.Errno) string { return strings.ToLower(e.Error()[:1]) + e.Error()[1:] }

// TestFailExplainsEIO is issue 10 item 15 on the SDK side: wazero's WASI
// turns a host ENOSPC into EIO, and a stage's message read "write /etc/x:
// input/output error". fail asks kiln_hostfs for the cause and prints it,
// path kept.
func TestFailExplainsEIO(t *testing.T) {
	nospace := func() syscall.Errno { return syscall.ENOSPC }
	tests := []struct {
		name  string
		err   error
		cause func() syscall.Errno
		want  string
	}{
		{"path error", &fs.PathError{Op: "write", Path: "/etc/x", Err: syscall.EIO}, nospace,
			"write /etc/x: " + lower(syscall.ENOSPC)},
		{"wrapped", fmt.Errorf("copying %s: %w", "/a", &fs.PathError{Op: "write", Path: "/b", Err: syscall.EIO}), nospace,
			"copying /a: write /b: " + lower(syscall.ENOSPC)},
		{"joined link error", errors.Join(errors.New("x"), &os.LinkError{Op: "link", Old: "/a", New: "/b", Err: syscall.EIO}),
			func() syscall.Errno { return syscall.EMLINK }, "x\nlink /a /b: " + lower(syscall.EMLINK)},
		{"real EIO stays", &fs.PathError{Op: "read", Path: "/x", Err: syscall.EIO}, func() syscall.Errno { return syscall.EIO },
			"read /x: " + syscall.EIO.Error()},
		{"no cause known", &fs.PathError{Op: "read", Path: "/x", Err: syscall.EIO}, func() syscall.Errno { return 0 },
			"read /x: " + syscall.EIO.Error()},
		{"not an EIO", &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, nospace,
			"open /x: " + syscall.ENOENT.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := explainEIO(tt.err, tt.cause).Error(); got != tt.want {
				t.Errorf("explainEIO = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	var called []string
	Register("org.test.a", func(o greetOpts) error { called = append(called, "a:"+o.Greeting); return nil })
	Register("org.test.b", func(greetOpts) error { return errors.New("b failed") })
	t.Cleanup(func() {
		delete(stages, "org.test.a")
		delete(stages, "org.test.b")
	})

	var stderr bytes.Buffer
	if code := dispatch("org.test.a", strings.NewReader(`{"greeting":"x"}`), &stderr); code != 0 {
		t.Fatalf("dispatch a = %d, stderr %q", code, stderr.String())
	}
	if len(called) != 1 || called[0] != "a:x" {
		t.Errorf("stage a saw %v, want [a:x]", called)
	}
	if code := dispatch("org.test.b", strings.NewReader(``), &stderr); code != ExitFailure ||
		!strings.Contains(stderr.String(), "org.test.b: b failed") {
		t.Errorf("dispatch b = %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := dispatch("org.test.zz", strings.NewReader(``), &stderr); code != ExitUsage ||
		!strings.Contains(stderr.String(), "has: org.test.a, org.test.b") {
		t.Errorf("dispatch unknown = %d, stderr %q", code, stderr.String())
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	Register("org.test.dup", func(greetOpts) error { return nil })
	t.Cleanup(func() { delete(stages, "org.test.dup") })
	defer func() {
		if recover() == nil {
			t.Error("second Register of the same name did not panic")
		}
	}()
	Register("org.test.dup", func(greetOpts) error { return nil })
}

// TestSecretKeyRefusesPredictableRandom is issue 10 item 9's SDK half:
// random_get is seeded from the stage id, which `kiln inspect` prints, so the
// SDK must not hand out secrets made from it unless the manifest opted the
// stage into non-reproducible randomness.
func TestSecretKeyRefusesPredictableRandom(t *testing.T) {
	for _, v := range []string{"", "reproducible", "NONREPRODUCIBLE", "nonreproducible "} {
		t.Setenv(EnvRandom, v)
		if b, err := SecretKey(32); !errors.Is(err, ErrPredictableRandom) || b != nil {
			t.Errorf("%s=%q: SecretKey = %x, %v; want ErrPredictableRandom", EnvRandom, v, b, err)
		}
	}
	t.Setenv(EnvRandom, RandomNonReproducible)
	a, err := SecretKey(32)
	if err != nil || len(a) != 32 {
		t.Fatalf("opted in: SecretKey = %x, %v", a, err)
	}
	if b, _ := SecretKey(32); bytes.Equal(a, b) {
		t.Errorf("two keys are equal: %x", a)
	}
	if _, err := SecretKey(0); err == nil {
		t.Error("SecretKey(0) succeeded")
	}
}
