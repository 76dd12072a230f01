package sdk

import (
	"bytes"
	"errors"
	"strings"
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
		{name: "unknown fields ignored", in: `{"greeting":"hi","later":true}`, want: greetOpts{"hi", 0}},
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
