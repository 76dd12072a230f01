package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// probe builds testdata/sdkprobe for lang ("c" or "rust"): a stage that
// prints what its SDK's option accessors return.
func probe(t testing.TB, lang string) *Module {
	t.Helper()
	helloMu.Lock()
	defer helloMu.Unlock()
	sdk := filepath.Join(repoRoot(t), "stages-wasm", "sdk")
	out := filepath.Join(buildDir, "probe-"+lang+".wasm")
	var cmds [][]string
	switch lang {
	case "c":
		cmds = [][]string{{toolchain(t, "c"), "--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-I", filepath.Join(sdk, "c"),
			"-o", out, "testdata/sdkprobe/probe.c", filepath.Join(sdk, "c", "kiln.c")}}
	case "rust":
		rustc := toolchain(t, "rust")
		rlib := filepath.Join(buildDir, "libkiln.rlib")
		cmds = [][]string{
			{rustc, "--target", "wasm32-wasi", "--edition", "2021", "-O", "--crate-type", "rlib",
				"--crate-name", "kiln", "-o", rlib, filepath.Join(sdk, "rust", "lib.rs")},
			{rustc, "--target", "wasm32-wasi", "--edition", "2021", "-O", "--extern", "kiln=" + rlib,
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
	m, err := ReadModuleFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sdkDefaults is the probe's output when no option is set.
const sdkDefaults = "greeting=(default)\ncount=-1\nflag=false\nnested=(none)\n"

// sdkOptionCases holds the C and Rust SDKs' small JSON readers to one
// table: what they return, and how they fail.
var sdkOptionCases = []struct {
	name    string
	options string
	want    string // stdout on success
	wantErr string // stderr on failure
	lang    string // "c" or "rust" when only one SDK behaves so
}{
	{name: "all types", options: `{"greeting":"hi","count":3,"flag":true,"nested":{"a":[1,2]}}`,
		want: "greeting=hi\ncount=3\nflag=true\nnested={\"a\":[1,2]}\n"},
	{name: "empty input", options: "", want: sdkDefaults},
	{name: "whitespace only", options: " \n\t", want: sdkDefaults},
	{name: "empty object", options: "{}", want: sdkDefaults},
	{name: "nulls are absent", options: `{"greeting":null,"count":null,"flag":null,"nested":null}`, want: sdkDefaults},
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
	{name: "64 levels deep", options: `{"nested":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`,
		want: "greeting=(default)\ncount=-1\nflag=false\nnested=" + strings.Repeat("[", 63) + strings.Repeat("]", 63) + "\n"},
	{name: "65 levels deep", options: `{"nested":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
		wantErr: "decoding options: malformed JSON (at byte 73)"},
	{name: "too deep", options: `{"nested":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		wantErr: "decoding options: malformed JSON"},
	{name: "string for integer", options: `{"count":"3"}`, wantErr: "option count: want an integer"},
	{name: "fraction for integer", options: `{"count":1.5}`, wantErr: "option count: want an integer"},
	{name: "number for string", options: `{"greeting":1}`, wantErr: "option greeting: want a string"},
	{name: "string for bool", options: `{"flag":"yes"}`, wantErr: "option flag: want true or false"},
	{name: "key with NUL does not match", options: `{"greeting\u0000x":"no"}`, want: sdkDefaults},
	{name: "C refuses a NUL in a string", options: `{"greeting":"a\u0000b"}`, lang: "c",
		wantErr: "option greeting: holds a NUL character"},
	{name: "Rust keeps a NUL in a string", options: `{"greeting":"a\u0000b"}`, lang: "rust",
		want: "greeting=a\\0b\ncount=-1\nflag=false\nnested=(none)\n"}, // the probe shows NUL as \0
}

// TestSDKOptions runs sdkOptionCases against both SDKs.
func TestSDKOptions(t *testing.T) {
	e := newEngine(t, Config{})
	for _, lang := range []string{"c", "rust"} {
		t.Run(lang, func(t *testing.T) {
			mod := probe(t, lang)
			for _, tt := range sdkOptionCases {
				if tt.lang != "" && tt.lang != lang {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					res, err := e.Run(t.Context(), Invocation{Name: "probe", ID: testID, Module: mod, Tree: t.TempDir(),
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

// FuzzSDKOptions feeds the same input to the C and Rust probes and checks
// that they agree with each other on everything they print and on the exit
// status, and with encoding/json on which documents are well-formed.
func FuzzSDKOptions(f *testing.F) {
	for _, tt := range sdkOptionCases {
		f.Add(tt.options)
	}
	ctx := context.Background()
	mods := []*Module{probe(f, "c"), probe(f, "rust")}
	// In-process, without a worker: a fuzz iteration is then ~0.1 ms.
	r, err := newRunner(ctx, runnerConfig{memoryLimit: 64 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = r.close(ctx) })
	tree := f.TempDir()

	f.Fuzz(func(t *testing.T, opts string) {
		// Known, documented differences: Rust reads stdin as UTF-8 and
		// keeps "\u0000" in strings, which C cannot hold.
		if !utf8.ValidString(opts) || strings.Contains(strings.ToLower(opts), `\u0000`) {
			t.Skip()
		}
		var outs [2]string
		var codes [2]uint32
		var malformed [2]bool
		for i, m := range mods {
			var stdout, stderr bytes.Buffer
			o := r.run(ctx, &stageRequest{Name: "probe", ID: testID, Digest: m.digest, Wasm: m.wasm,
				Options: []byte(opts), Tree: tree}, &stdout, &stderr, func() {})
			if o.Trap != "" || o.Err != "" {
				t.Fatalf("probe %d on %q: %+v", i, opts, o)
			}
			outs[i], codes[i] = stdout.String(), o.ExitCode
			malformed[i] = strings.Contains(stderr.String(), "decoding options:")
		}
		if outs[0] != outs[1] || codes[0] != codes[1] || malformed[0] != malformed[1] {
			t.Fatalf("C and Rust disagree on %q:\nC (exit %d): %q\nRust (exit %d): %q",
				opts, codes[0], outs[0], codes[1], outs[1])
		}
		if want := wellFormedOptions(opts); malformed[0] == want {
			t.Fatalf("%q: the SDKs say malformed=%v, encoding/json says well-formed=%v", opts, malformed[0], want)
		}
	})
}

// wellFormedOptions is what the SDKs should accept, by encoding/json: one
// JSON object nested at most 64 levels, or nothing but whitespace.
func wellFormedOptions(s string) bool {
	trimmed := strings.Trim(s, " \t\r\n")
	if trimmed == "" {
		return true
	}
	if trimmed[0] != '{' || !json.Valid([]byte(s)) {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(s))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return true // io.EOF: Valid already vouched for the syntax
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > 64 {
				return false
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}
