package debrepo

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Field is one field of a deb822 paragraph. Value has the first line's text
// trimmed; continuation lines follow it after "\n" with their one leading
// space or tab removed, as deb822(5) describes.
type Field struct {
	Name  string
	Value string
}

// Paragraph is one deb822 stanza, fields in file order.
type Paragraph struct {
	Fields []Field
	index  map[string]int
}

// Get returns the value of a field; field names are case-insensitive.
func (p *Paragraph) Get(name string) (string, bool) {
	i, ok := p.index[strings.ToLower(name)]
	if !ok {
		return "", false
	}
	return p.Fields[i].Value, true
}

// maxLine bounds one line: Packages descriptions are long, but a line of a
// megabyte is not metadata.
const maxLine = 1 << 20

// ReadParagraphs calls fn for each paragraph of a deb822 file. It refuses
// duplicate fields (a second Filename or SHA256 in one stanza would make the
// record ambiguous), continuation lines with no field, and field names with
// characters deb822 does not allow, and control characters. Lines starting with '#' are comments.
func ReadParagraphs(r io.Reader, fn func(*Paragraph) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var cur *Paragraph
	lineNo := 0
	flush := func() error {
		if cur == nil {
			return nil
		}
		p := cur
		cur = nil
		return fn(p)
	}
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if line[0] == '#' {
			continue
		}
		// Control characters have no place in metadata, and a NUL would end
		// the third-party relation parser early: "a\x00, b" parses as "a".
		if i := bytes.IndexFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' }); i >= 0 {
			return fmt.Errorf("line %d: control character 0x%02x: %w", lineNo, line[i], ErrMalformed)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur == nil {
				return fmt.Errorf("line %d: continuation line with no field: %w", lineNo, ErrMalformed)
			}
			f := &cur.Fields[len(cur.Fields)-1]
			f.Value += "\n" + strings.TrimRight(string(line[1:]), " \t")
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("line %d: no field name: %w", lineNo, ErrMalformed)
		}
		name := string(line[:colon])
		if !validFieldName(name) {
			return fmt.Errorf("line %d: invalid field name %q: %w", lineNo, name, ErrMalformed)
		}
		if cur == nil {
			cur = &Paragraph{index: map[string]int{}}
		}
		key := strings.ToLower(name)
		if _, dup := cur.index[key]; dup {
			return fmt.Errorf("line %d: duplicate field %q: %w", lineNo, name, ErrMalformed)
		}
		cur.index[key] = len(cur.Fields)
		cur.Fields = append(cur.Fields, Field{Name: name, Value: strings.TrimSpace(string(line[colon+1:]))})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w: %w", lineNo+1, ErrMalformed, err)
	}
	return flush()
}

// validFieldName follows deb822(5): US-ASCII printable characters except
// colon, not starting with '#' or '-'.
func validFieldName(s string) bool {
	if s == "" || s[0] == '#' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ':' {
			return false
		}
	}
	return true
}
