package treepath

import (
	"errors"
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
