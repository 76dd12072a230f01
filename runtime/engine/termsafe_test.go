package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var cleanTests = []struct {
	name, in, want string
}{
	{"plain text and UTF-8 stay", "héllo 日本\tok\n", "héllo 日本\tok\n"},
	{"SGR colour", "\x1b[1;31mred\x1b[0m\n", "red\n"},
	{"cursor movement and erase", "a\x1b[2K\x1b[1A\x1b[10;20Hb\n", "ab\n"},
	{"private CSI", "\x1b[?1049hx\x1b[?25l\n", "x\n"},
	{"OSC title ended by BEL", "\x1b]0;pwned\x07after\n", "after\n"},
	{"OSC 52 clipboard ended by ST", "\x1b]52;c;cm0gLXJmIH4=\x1b\\after\n", "after\n"},
	{"OSC 8 hyperlink", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\\n", "click\n"},
	{"DCS string", "\x1bPq#0;2;0;0;0\x1b\\x\n", "x\n"},
	{"two-byte and charset escapes", "\x1bc\x1b(0x\x1b=\n", "x\n"},
	{"C1 CSI and OSC as UTF-8", "a\u009b31mb\u009d0;t\u009cc\n", "abc\n"},
	{"C0 controls but newline and tab", "a\rb\bc\x07d\x00e\x7ff\n", "abcdef\n"},
	{"a stray ESC costs only its line", "x\x1b]no end\nnext line\n", "x\nnext line\n"},
	{"ESC inside a string starts a new escape", "\x1b]0;t\x1b[31mz\n", "z\n"},
	{"invalid UTF-8 becomes U+FFFD", "a\xffb\xc3\n", "a\ufffdb\ufffd\n"},
}

func TestStripControls(t *testing.T) {
	for _, tt := range cleanTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StripControls(tt.in); got != tt.want {
				t.Errorf("StripControls(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestTextCleanerAcrossWrites: a sequence split over writes (down to one
// byte per write, as a stage writing unbuffered does) is removed whole.
func TestTextCleanerAcrossWrites(t *testing.T) {
	for _, tt := range cleanTests {
		var c textCleaner
		var out []byte
		for i := 0; i < len(tt.in); i++ {
			out = c.append(out, []byte{tt.in[i]})
		}
		if string(out) != tt.want || len(c.partial) > 0 {
			t.Errorf("%s: byte by byte: %q (and %q pending), want %q", tt.name, out, c.partial, tt.want)
		}
	}
}

// TestStageOutputIsCleaned: a stage that prints escape sequences once drove
// the terminal of whoever watched the build (title, clipboard, cursor).
// Its log, the live output and the error's stderr are all cleaned.
func TestStageOutputIsCleaned(t *testing.T) {
	e := newEngine(t, Config{})
	opts, _ := json.Marshal(map[string]any{
		"Text": "\x1b]0;owned\x07\x1b[2J\x1b]52;c;Zm9v\x1b\\visible\u009b1A\n", "Times": 1,
		"Stderr": "\x1b[31mbad\x1b[0m thing\r\n", "Code": 3,
	})
	var live bytes.Buffer
	res, err := e.Run(t.Context(), Invocation{Name: "print", ID: testID, Module: guest(t), Tree: t.TempDir(), Options: opts, Log: &live})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, ErrExit) {
		t.Fatalf("Run = %v, want exit 3", err)
	}
	for what, got := range map[string]string{"Result.Log": string(res.Log), "Stage.Log": live.String(), "error": err.Error()} {
		if strings.ContainsAny(got, "\x1b\x07\r\u009b") {
			t.Errorf("%s carries control characters: %q", what, got)
		}
	}
	if want := "visible\nbad thing\n"; string(res.Log) != want {
		t.Errorf("log = %q, want %q", res.Log, want)
	}
}

// TestBuildOutputLimit: what an Engine's stages print across the whole build
// (one Engine) is bounded; past the limit the live log gets one note, and
// later stages keep a smaller log.
func TestBuildOutputLimit(t *testing.T) {
	const limit = 64 << 10
	e := newEngine(t, Config{OutputLimit: limit})
	line := strings.Repeat("x", 99) + "\n"
	opts, _ := json.Marshal(map[string]any{"Text": line, "Times": 1000}) // 100,000 bytes a stage
	var live bytes.Buffer
	for i := range 3 {
		res, err := e.Run(t.Context(), Invocation{Name: "print", ID: testID, Module: guest(t), Tree: t.TempDir(), Options: opts, Log: &live})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if i == 2 && len(res.Log) > spentLogLimit+100 {
			t.Errorf("a stage after the limit kept %d bytes of log, want about %d", len(res.Log), spentLogLimit)
		}
	}
	if live.Len() > limit+300 {
		t.Errorf("the live log got %d bytes, over the limit of %d", live.Len(), limit)
	}
	if n := strings.Count(live.String(), "[kiln: the stages of this build have printed"); n != 1 {
		t.Errorf("the live log has %d notes of the limit, want 1:\n...%s", n, live.String()[max(0, live.Len()-400):])
	}
}
