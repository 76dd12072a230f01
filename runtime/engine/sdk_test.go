package engine

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// probe builds testdata/sdkprobe for lang ("c" or "rust"): a stage that
// prints what its SDK's option accessors return.
func probe(t *testing.T, lang string) *Module {
	t.Helper()
	helloMu.Lock()
	defer helloMu.Unlock()
	sdk := filepath.Join(repoRoot(t), "stages-wasm", "sdk")
	out := filepath.Join(buildDir, "probe-"+lang+".wasm")
	var cmds [][]string
	switch lang {
	case "c":
		if _, err := exec.LookPath("clang"); err != nil {
			t.Skip("clang not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
		}
		cmds = [][]string{{"clang", "--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-I", filepath.Join(sdk, "c"),
			"-o", out, "testdata/sdkprobe/probe.c", filepath.Join(sdk, "c", "kiln.c")}}
	case "rust":
		if _, err := os.Stat("/usr/bin/rustc"); err != nil {
			t.Skip("Debian's rustc not installed (apt-get install rustc libstd-rust-dev-wasm32)")
		}
		rlib := filepath.Join(buildDir, "libkiln.rlib")
		cmds = [][]string{
			{"/usr/bin/rustc", "--target", "wasm32-wasi", "--edition", "2021", "-O", "--crate-type", "rlib",
				"--crate-name", "kiln", "-o", rlib, filepath.Join(sdk, "rust", "lib.rs")},
			{"/usr/bin/rustc", "--target", "wasm32-wasi", "--edition", "2021", "-O", "--extern", "kiln=" + rlib,
				"-o", out, "testdata/sdkprobe/probe.rs"},
		}
	}
	if _, err := os.Stat(out); err != nil {
		for _, c := range cmds {
			if msg, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, msg)
			}
		}
	}
	m, err := ReadModule(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSDKOptions holds the C and Rust SDKs' small JSON readers to one table:
// what they return, and how they fail.
func TestSDKOptions(t *testing.T) {
	const defaults = "greeting=(default)\ncount=-1\nflag=false\nnested=(none)\n"
	tests := []struct {
		name    string
		options string
		want    string // stdout on success
		wantErr string // stderr on failure
	}{
		{name: "all types", options: `{"greeting":"hi","count":3,"flag":true,"nested":{"a":[1,2]}}`,
			want: "greeting=hi\ncount=3\nflag=true\nnested={\"a\":[1,2]}\n"},
		{name: "empty input", options: "", want: defaults},
		{name: "whitespace only", options: " \n\t", want: defaults},
		{name: "empty object", options: "{}", want: defaults},
		{name: "nulls are absent", options: `{"greeting":null,"count":null,"flag":null,"nested":null}`, want: defaults},
		{name: "whitespace everywhere", options: " {\n \"count\" : -7 ,\t\"flag\" : false }\n",
			want: "greeting=(default)\ncount=-7\nflag=false\nnested=(none)\n"},
		{name: "escapes", options: `{"greeting":"a\"b\\c\/d\te\u00e5\ud83d\ude00"}`,
			want: "greeting=a\"b\\c/d\teå😀\ncount=-1\nflag=false\nnested=(none)\n"},
		{name: "unpaired surrogate", options: `{"greeting":"x\ud800y"}`,
			want: "greeting=x\uFFFDy\ncount=-1\nflag=false\nnested=(none)\n"},
		{name: "last duplicate wins", options: `{"count":1,"count":2}`,
			want: "greeting=(default)\ncount=2\nflag=false\nnested=(none)\n"},
		{name: "nested keys do not match", options: `{"nested":{"greeting":"no","count":5}}`,
			want: "greeting=(default)\ncount=-1\nflag=false\nnested={\"greeting\":\"no\",\"count\":5}\n"},
		{name: "escaped key", options: `{"gr\u0065eting":"yes"}`,
			want: "greeting=yes\ncount=-1\nflag=false\nnested=(none)\n"},
		{name: "malformed", options: `{"greeting": hi}`, wantErr: "decoding options: malformed JSON (at byte 13)"},
		{name: "unterminated", options: `{"greeting": "hi`, wantErr: "decoding options: malformed JSON (at byte 16)"},
		{name: "not an object", options: `[1]`, wantErr: "decoding options: not a JSON object (at byte 0)"},
		{name: "trailing data", options: `{} {}`, wantErr: "decoding options: data after the object (at byte 3)"},
		{name: "too deep", options: `{"nested":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
			wantErr: "decoding options: malformed JSON"},
		{name: "string for integer", options: `{"count":"3"}`, wantErr: "option count: want an integer"},
		{name: "fraction for integer", options: `{"count":1.5}`, wantErr: "option count: want an integer"},
		{name: "number for string", options: `{"greeting":1}`, wantErr: "option greeting: want a string"},
		{name: "string for bool", options: `{"flag":"yes"}`, wantErr: "option flag: want true or false"},
	}
	e := newEngine(t, Config{})
	for _, lang := range []string{"c", "rust"} {
		t.Run(lang, func(t *testing.T) {
			mod := probe(t, lang)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					res, err := e.Run(t.Context(), Stage{Name: "probe", ID: testID, Module: mod, Tree: t.TempDir(),
						Options: json.RawMessage(tt.options)})
					if tt.wantErr == "" {
						if err != nil {
							t.Fatalf("Run: %v", err)
						}
						if string(res.Log) != tt.want {
							t.Errorf("output:\n%s\nwant:\n%s", res.Log, tt.want)
						}
						return
					}
					var se *StageError
					if !errors.As(err, &se) || se.ExitCode != 1 {
						t.Fatalf("Run = %v, want exit status 1", err)
					}
					if want := "probe: " + tt.wantErr; !strings.Contains(string(se.Stderr), want) {
						t.Errorf("stderr %q does not contain %q", se.Stderr, want)
					}
				})
			}
		})
	}
}
