package wasmmeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// minimal is the smallest valid module: the header and nothing else, plus a
// type section so that Read has a non-custom section to skip.
var minimal = append(append([]byte{}, wasmHeader...), 0x01, 0x04, 0x01, 0x60, 0x00, 0x00)

func TestAppendRead(t *testing.T) {
	stages := []StageMeta{
		{Name: "org.test.b", Summary: "second", Schema: json.RawMessage(`{ "type": "object" }`)},
		{Name: "org.test.a", Summary: "first", Schema: json.RawMessage(`{"properties":{"x":{"type":"string"}}}`)},
	}
	out, err := Append(minimal, stages)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, minimal) {
		t.Fatal("Append changed the module's existing bytes")
	}
	got, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "org.test.a" || got[1].Name != "org.test.b" {
		t.Fatalf("Read = %+v, want a then b", got)
	}
	if string(got[1].Schema) != `{"type":"object"}` {
		t.Errorf("schema not compacted: %s", got[1].Schema)
	}
	again, err := Append(minimal, []StageMeta{stages[1], stages[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Error("Append depends on the order of its input")
	}
	if _, err := Append(out, stages); err == nil || !strings.Contains(err.Error(), "already has") {
		t.Errorf("second Append error = %v, want refusal", err)
	}
}

func TestLargeSectionSize(t *testing.T) {
	// A schema over 127 bytes needs a multi-byte LEB128 size.
	big := `{"description":"` + strings.Repeat("x", 70000) + `"}`
	out, err := Append(minimal, []StageMeta{{Name: "n", Schema: json.RawMessage(big)}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(out)
	if err != nil || len(got) != 1 || len(got[0].Schema) != len(big) {
		t.Fatalf("Read = %d stages, %v", len(got), err)
	}
}

func TestReadErrors(t *testing.T) {
	section := func(name, payload string) []byte {
		body := appendULEB(nil, uint64(len(name)))
		body = append(append(body, name...), payload...)
		s := appendULEB([]byte{0}, uint64(len(body)))
		return append(s, body...)
	}
	mod := func(parts ...[]byte) []byte {
		return bytes.Join(append([][]byte{minimal}, parts...), nil)
	}
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"empty", nil, "not a WebAssembly module"},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00"), "not a WebAssembly module"},
		{"no section", mod(section("other", "x")), "no kiln.stages section"},
		{"truncated size", mod([]byte{0x00, 0x80}), "truncated LEB128"},
		{"size past end", mod([]byte{0x00, 0x10, 0x01}), "runs past the end"},
		{"overlong LEB", mod([]byte{0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), "longer than 5 bytes"},
		{"name past section", mod([]byte{0x00, 0x02, 0x09, 'k'}), "name runs past"},
		{"bad json", mod(section(SectionName, "[{")), "kiln.stages section"},
		{"not array", mod(section(SectionName, `{"name":"x"}`)), "cannot unmarshal"},
		{"empty name", mod(section(SectionName, `[{"name":"","schema":{}}]`)), "empty name"},
		{"schema not object", mod(section(SectionName, `[{"name":"a","schema":[]}]`)), "not a JSON object"},
		{"duplicate stage", mod(section(SectionName, `[{"name":"a","schema":{}},{"name":"a","schema":{}}]`)), "listed twice"},
		{"two sections", mod(section(SectionName, `[]`), section(SectionName, `[]`)), "two kiln.stages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(tt.wasm)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Read(minimal); !errors.Is(err, ErrNoMetadata) {
		t.Errorf("Read(no section) = %v, want ErrNoMetadata", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	if _, err := Encode([]StageMeta{{Name: "a", Schema: json.RawMessage(`{}`)}, {Name: "a", Schema: json.RawMessage(`{}`)}}); err == nil {
		t.Error("Encode accepted a duplicate name")
	}
	if _, err := Encode([]StageMeta{{Name: "a", Schema: json.RawMessage(`true`)}}); err == nil {
		t.Error("Encode accepted a schema that is not an object")
	}
}

func FuzzRead(f *testing.F) {
	good, err := Append(minimal, []StageMeta{{Name: "org.test.a", Summary: "s", Schema: json.RawMessage(`{"type":"object"}`)}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(minimal)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, wasm []byte) {
		stages, err := Read(wasm)
		if err != nil {
			return
		}
		// Whatever Read accepts must survive a round trip through Append
		// on a module without the section.
		out, err := Append(minimal, stages)
		if err != nil {
			t.Fatalf("Append of stages Read accepted: %v", err)
		}
		again, err := Read(out)
		if err != nil || len(again) != len(stages) {
			t.Fatalf("round trip: %d stages, %v; want %d", len(again), err, len(stages))
		}
	})
}
