package engine

import (
	"unicode/utf8"
)

// textCleaner removes terminal control sequences from a stream of stage
// output, so that a stage cannot drive the terminal of whoever reads its
// log: move the cursor to overwrite kiln's own lines, set the window title,
// write the clipboard (OSC 52), make links that lie (OSC 8), or query the
// terminal so that it types a reply. It drops ESC sequences (CSI, OSC, DCS,
// SOS, PM, APC strings and two-byte escapes) whole, every other C0 control
// but newline and tab, DEL, and the C1 controls (U+0080 to U+009F, which
// some terminals obey like their ESC forms); invalid UTF-8 becomes U+FFFD.
// A newline always ends a sequence, so a stray ESC costs at most the rest of
// its line. State carries across writes: a sequence split between two
// writes is still removed whole.
type textCleaner struct {
	state   cleanState
	partial []byte // the start of a UTF-8 sequence cut by the end of a write
}

type cleanState uint8

const (
	stText      cleanState = iota
	stEsc                  // after ESC
	stEscInter             // after ESC and intermediate bytes
	stCSI                  // in a control sequence
	stString               // in an OSC, DCS, SOS, PM or APC string
	stStringEsc            // ESC inside a string: ST if '\' follows
)

// append appends the cleaned form of p to dst.
func (c *textCleaner) append(dst, p []byte) []byte {
	data := p
	if len(c.partial) > 0 {
		data = append(c.partial, p...)
		c.partial = nil
	}
	for i := 0; i < len(data); {
		b := data[i]
		if b >= utf8.RuneSelf {
			if !utf8.FullRune(data[i:]) {
				c.partial = append([]byte(nil), data[i:]...)
				break
			}
			r, size := utf8.DecodeRune(data[i:])
			dst = c.rune(dst, r, data[i:i+size])
			i += size
			continue
		}
		if c.byte(&dst, b) {
			i++
		}
	}
	return dst
}

// byte handles an ASCII byte; false means it must be handled again in the
// new state.
func (c *textCleaner) byte(dst *[]byte, b byte) bool {
	if b == '\n' {
		// Ends any sequence: a stray ESC cannot swallow the log.
		c.state = stText
		*dst = append(*dst, b)
		return true
	}
	switch c.state {
	case stText:
		switch {
		case b == 0x1b:
			c.state = stEsc
		case b == '\t' || (b >= 0x20 && b < 0x7f):
			*dst = append(*dst, b)
		}
	case stEsc:
		switch {
		case b == '[':
			c.state = stCSI
		case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
			c.state = stString
		case b >= 0x20 && b <= 0x2f:
			c.state = stEscInter
		case b >= 0x30 && b <= 0x7e:
			c.state = stText
		case b == 0x1b:
		default: // other C0 controls and DEL: dropped, as in text
		}
	case stEscInter:
		switch {
		case b >= 0x20 && b <= 0x2f:
		case b >= 0x30 && b <= 0x7e:
			c.state = stText
		default:
			c.state = stText
			return false
		}
	case stCSI:
		switch {
		case b >= 0x40 && b <= 0x7e:
			c.state = stText
		case b == 0x1b:
			c.state = stEsc
		}
	case stString:
		switch b {
		case 0x07: // BEL ends an OSC string
			c.state = stText
		case 0x1b:
			c.state = stStringEsc
		}
	case stStringEsc:
		if b == '\\' {
			c.state = stText
			return true
		}
		c.state = stEsc
		return false
	}
	return true
}

// rune handles a non-ASCII character (or an invalid byte, as RuneError).
func (c *textCleaner) rune(dst []byte, r rune, enc []byte) []byte {
	if r >= 0x80 && r <= 0x9f { // C1 controls
		switch r {
		case 0x9b: // CSI
			c.state = stCSI
		case 0x9d, 0x90, 0x98, 0x9e, 0x9f: // OSC, DCS, SOS, PM, APC
			c.state = stString
		case 0x9c: // ST
			if c.state == stString || c.state == stStringEsc {
				c.state = stText
			}
		}
		return dst
	}
	switch c.state {
	case stText:
	case stString:
		return dst // a string's text is part of the sequence
	default:
		// Not part of any sequence: it ends the one in progress.
		c.state = stText
	}
	if r == utf8.RuneError && len(enc) == 1 {
		return utf8.AppendRune(dst, utf8.RuneError)
	}
	return append(dst, enc...)
}

// StripControls returns s without terminal control sequences, as stage
// output is cleaned: for text from a manifest or a module (a pipeline name,
// a trap's function names) that kiln prints.
func StripControls(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < 0x20 && b != '\n' && b != '\t') || b >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var c textCleaner
	out := c.append(nil, []byte(s))
	if len(c.partial) > 0 {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return string(out)
}
