package bootcfg

import (
	"errors"
	"fmt"
	"strings"
)

// ErrCmdline is returned for a kernel command line kiln will not write.
var ErrCmdline = errors.New("not a kernel command line kiln writes")

// SplitCmdline splits a kernel command line into its parameters the way
// the kernel does (lib/cmdline.c next_arg): spaces separate parameters
// except inside double quotes. Control characters are refused: a newline
// would end the line of grub.cfg, grubenv or a BLS entry it lands in.
func SplitCmdline(s string) ([]string, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return nil, fmt.Errorf("%w: control character %q at byte %d", ErrCmdline, c, i)
		}
	}
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
			cur.WriteRune(r)
		case r == ' ' && !inQuote:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			inWord = true
			cur.WriteRune(r)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("%w: unbalanced double quote in %q", ErrCmdline, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// JoinCmdline is the canonical form of a command line: its parameters
// separated by single spaces.
func JoinCmdline(words []string) string { return strings.Join(words, " ") }

// GrubQuote quotes s as one word of GRUB script. Inside single quotes GRUB
// takes every character literally (no $ expansion, no escapes), so the only
// character to handle is the single quote itself, which is closed, written
// backslash-escaped and reopened, as in sh.
func GrubQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
