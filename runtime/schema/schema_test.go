package schema

import (
	"strings"
	"testing"
)

const usersSchema = `{
  "additionalProperties": false,
  "required": ["users"],
  "properties": {
    "users": {
      "type": "object",
      "additionalProperties": {
        "type": "object",
        "properties": {"uid": {"type": "number"}, "groups": {"type": "array", "items": {"type": "string"}}}
      }
    }
  }
}`

func TestValidate(t *testing.T) {
	s, err := Compile("test://users", []byte(usersSchema))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, doc string
		want      []string // "path: substring of message"
	}{
		{"valid", `{"users": {"alice": {"uid": 1000}}}`, nil},
		{"missing", `{}`, []string{"$: users"}},
		{"wrong type", `{"users": {"alice": {"uid": "1000"}}}`, []string{"$.users.alice.uid: number"}},
		{"array item", `{"users": {"bob": {"groups": ["wheel", 3]}}}`, []string{"$.users.bob.groups[1]: string"}},
		{"odd key", `{"users": {"a b": {"uid": true}}}`, []string{`$.users["a b"].uid: number`}},
		{"unknown option", `{"users": {}, "colour": 1}`, []string{"$: colour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := s.Validate([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != len(tc.want) {
				t.Fatalf("violations %+v, want %d", vs, len(tc.want))
			}
			for i, w := range tc.want {
				path, msg, _ := strings.Cut(w, ": ")
				if got := vs[i].PathString("$"); got != path {
					t.Errorf("path %q, want %q", got, path)
				}
				if !strings.Contains(vs[i].Message, msg) {
					t.Errorf("message %q lacks %q", vs[i].Message, msg)
				}
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `{}`},
		{`{"b": 1, "a": [1.50, {"d": "x<y", "c": null}]}`, `{"a":[1.50,{"c":null,"d":"x<y"}],"b":1}`},
		{"{\n  \"z\": true\n}", `{"z":true}`},
	} {
		got, err := Canonical([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("Canonical(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := Canonical([]byte(`{"a":`)); err == nil {
		t.Error("Canonical accepted broken JSON")
	}
}
