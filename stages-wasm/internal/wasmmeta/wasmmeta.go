package wasmmeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// SectionName is the name of the custom section holding the stage metadata.
const SectionName = "kiln.stages"

// wasmHeader is the magic number and version 1 that start every module.
var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// ErrNoMetadata is returned by Read for a valid module without a
// kiln.stages section: a WASI command, but not one that says what stages it
// provides.
var ErrNoMetadata = errors.New("module has no " + SectionName + " section")

// StageMeta describes one stage a module provides.
type StageMeta struct {
	Name    string          `json:"name"`
	Summary string          `json:"summary"`
	Schema  json.RawMessage `json:"schema"`
}

// Validate checks what Read and Append require of an entry: a name, and a
// schema that is a JSON object. The schema is not compiled here; that is the
// runtime's job, with its own error messages.
func (m StageMeta) Validate() error {
	if m.Name == "" {
		return errors.New("stage with an empty name")
	}
	if !utf8.ValidString(m.Name) || !utf8.ValidString(m.Summary) {
		return fmt.Errorf("stage %q: name or summary is not UTF-8", m.Name)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.Schema, &obj); err != nil {
		return fmt.Errorf("stage %q: schema is not a JSON object: %w", m.Name, err)
	}
	return nil
}

// Encode returns the section payload for stages: a JSON array sorted by
// name with compact schemas, so that the same stages always give the same
// bytes (the module digest is part of every stage id).
func Encode(stages []StageMeta) ([]byte, error) {
	sorted := slices.Clone(stages)
	slices.SortFunc(sorted, func(a, b StageMeta) int { return cmpString(a.Name, b.Name) })
	for i, s := range sorted {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if i > 0 && sorted[i-1].Name == s.Name {
			return nil, fmt.Errorf("stage %q listed twice", s.Name)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, s.Schema); err != nil {
			return nil, fmt.Errorf("stage %q: compacting schema: %w", s.Name, err)
		}
		sorted[i].Schema = buf.Bytes()
	}
	return json.Marshal(sorted)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Append returns wasm with a kiln.stages section describing stages added at
// the end. Custom sections may appear anywhere after the header, and the end
// leaves every other byte (and so every code offset) where the compiler put
// it. A module that already has the section is refused rather than given two
// conflicting descriptions.
func Append(wasm []byte, stages []StageMeta) ([]byte, error) {
	if _, err := Read(wasm); err == nil {
		return nil, fmt.Errorf("module already has a %s section", SectionName)
	} else if !errors.Is(err, ErrNoMetadata) {
		return nil, err
	}
	payload, err := Encode(stages)
	if err != nil {
		return nil, err
	}
	var body []byte
	body = appendULEB(body, uint64(len(SectionName)))
	body = append(body, SectionName...)
	body = append(body, payload...)

	out := slices.Clip(slices.Clone(wasm))
	out = append(out, 0) // custom section id
	out = appendULEB(out, uint64(len(body)))
	return append(out, body...), nil
}

// Read returns the stages described by wasm's kiln.stages section. It checks
// the module header and the framing of every section up to the end, so a
// truncated or corrupt file is an error here rather than a surprise later;
// it does not validate the code. A module with no section gives
// ErrNoMetadata, one with two an error.
func Read(wasm []byte) ([]StageMeta, error) {
	if !bytes.HasPrefix(wasm, wasmHeader) {
		return nil, errors.New("not a WebAssembly module (bad magic or version)")
	}
	var payload []byte
	found := false
	for off := len(wasmHeader); off < len(wasm); {
		id := wasm[off]
		size, n, err := readULEB(wasm[off+1:])
		if err != nil {
			return nil, fmt.Errorf("section at byte %d: size: %w", off, err)
		}
		start := off + 1 + n
		if size > uint64(len(wasm)-start) {
			return nil, fmt.Errorf("section at byte %d: size %d runs past the end of the module", off, size)
		}
		body := wasm[start : start+int(size)]
		off = start + int(size)
		if id != 0 {
			continue
		}
		nameLen, n, err := readULEB(body)
		if err != nil {
			return nil, fmt.Errorf("custom section at byte %d: name length: %w", start, err)
		}
		if nameLen > uint64(len(body)-n) {
			return nil, fmt.Errorf("custom section at byte %d: name runs past the section", start)
		}
		if string(body[n:n+int(nameLen)]) != SectionName {
			continue
		}
		if found {
			return nil, fmt.Errorf("module has two %s sections", SectionName)
		}
		found = true
		payload = body[n+int(nameLen):]
	}
	if !found {
		return nil, ErrNoMetadata
	}
	var stages []StageMeta
	if err := json.Unmarshal(payload, &stages); err != nil {
		return nil, fmt.Errorf("%s section: %w", SectionName, err)
	}
	seen := make(map[string]bool, len(stages))
	for _, s := range stages {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%s section: %w", SectionName, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%s section: stage %q listed twice", SectionName, s.Name)
		}
		seen[s.Name] = true
	}
	return stages, nil
}

// readULEB decodes an unsigned LEB128 of at most 32 bits, as the wasm
// binary format uses for sizes, returning the value and its length.
func readULEB(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("truncated LEB128")
		}
		c := b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if v > 0xffffffff {
				return 0, 0, errors.New("LEB128 exceeds 32 bits")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 longer than 5 bytes")
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
