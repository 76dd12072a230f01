package stageopts

import (
	"errors"
	"strings"
	"testing"
)

type inner struct {
	Size int `json:"size"`
}

type opts struct {
	Name  string           `json:"name"`
	Users map[string]inner `json:"users"`
}

// TestDecodeExact is the strict decoding both the Go SDK and the
// assemblers rely on (issue 10 item 10), now in one place: exact names, no
// unknown or repeated members, defaults kept for empty input.
func TestDecodeExact(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // substring of the error, "" for success
		option   bool   // the error wraps ErrOption
	}{
		{name: "ok", in: `{"name":"a","users":{"u":{"size":1}}}`},
		{name: "empty", in: " \n"},
		{name: "case", in: `{"NAME":"a"}`, want: `option "NAME": no such option (names are matched exactly; the option is "name")`, option: true},
		{name: "fold", in: `{"users":{"u":{"ſize":1}}}`, want: `option "users.u.ſize"`, option: true},
		{name: "unknown", in: `{"bogus":1}`, want: `option "bogus": no such option`, option: true},
		{name: "twice", in: `{"name":"a","name":"b"}`, want: `option "name": given twice`, option: true},
		{name: "map key twice", in: `{"users":{"u":{},"u":{}}}`, want: `option "users.u": given twice`, option: true},
		{name: "syntax", in: `{"name":}`, want: "(at byte 9)"},
		{name: "type", in: `{"name":1}`, want: "decoding options: json: cannot unmarshal number"},
		{name: "trailing", in: `{} {}`, want: "decoding options:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := opts{Name: "default"}
			err := Decode([]byte(tc.in), &got)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Decode(%s) = %v", tc.in, err)
				}
				if strings.TrimSpace(tc.in) == "" && got.Name != "default" {
					t.Errorf("empty input changed the defaults: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode(%s) = %v, want an error containing %q", tc.in, err, tc.want)
			}
			if errors.Is(err, ErrOption) != tc.option {
				t.Errorf("Decode(%s) = %v: wraps ErrOption %v, want %v", tc.in, err, !tc.option, tc.option)
			}
		})
	}
}
