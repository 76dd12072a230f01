// Package maintscript decides, without running it, what a Debian maintainer
// script does on a fresh install, for kiln.deb, which cannot run scripts
// (WASI has no exec).
//
// It parses a conservative subset of POSIX sh (simple commands, if, case,
// function definitions, &&, ||, !, literal words with $1/$2/"$@"/DPKG_ROOT
// expansions) and evaluates it for one invocation (postinst configure with
// no old version, preinst install), taking conditions it can decide from
// the arguments and the tree ([ -e PATH ] and friends, command -v). The
// commands it lets "run" are those whose effect kiln reproduces or that
// have none on a fresh install: update-alternatives --install (recorded),
// ldconfig (recorded), dpkg-maintscript-helper's conffile and symlink
// helpers, deb-systemd-helper's unmask and was-enabled, echo, set, exit.
// Anything else that would run, and anything it cannot parse or expand,
// makes the script Unknown with the line and the reason: a script is never
// assumed harmless because it was not understood. Code that would not run
// (an upgrade branch, a block under [ -d /run/systemd/system ]) may use
// any construct the parser accepts.
package maintscript

import (
	"errors"
	"fmt"
	"strings"
)

// tokKind is the kind of a lexical token.
type tokKind int

const (
	tWord tokKind = iota
	tOp           // ; && || | ! ( ) { } ;; & newline and redirections
	tEOF
)

// part is a piece of a word: literal text, or a parameter expansion.
type part struct {
	text   string
	param  string // name of $param / ${param...}, "" for literal text
	quoted bool
}

type token struct {
	kind  tokKind
	op    string // for tOp; "\n" for a newline
	parts []part // for tWord
	line  int
	// redir is set for a redirection operator: the word after it is its
	// target (joined by the lexer).
	redir string
}

// literal is the word's text when it has no expansion and no quoting.
func (t token) literal() (string, bool) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.param != "" || p.quoted {
			return "", false
		}
		b.WriteString(p.text)
	}
	return b.String(), true
}

type lexError struct {
	line int
	msg  string
}

func (e *lexError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// lex splits src into tokens. Here-documents, command substitution,
// backquotes and arithmetic are refused: they cannot be expanded without
// running something.
func lex(src string) ([]token, error) {
	var toks []token
	type heredoc struct {
		delim string
		strip bool
	}
	var heredocs []heredoc
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
			line++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "<<"):
			// The body is skipped (from the next line to the delimiter)
			// and the command marked: running it is never reproduced.
			j := i + 2
			strip := j < len(src) && src[j] == '-'
			if strip {
				j++
			}
			for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
				j++
			}
			w, n, _, err := lexWord(src[j:], line)
			if err != nil || n == 0 {
				return nil, &lexError{line, "here-document without a delimiter"}
			}
			delim := ""
			for _, p := range w.parts {
				delim += p.text
			}
			toks = append(toks, token{kind: tOp, op: "redir", redir: "<<", line: line, parts: []part{{text: "\x00here-document"}}})
			i = j + n
			heredocs = append(heredocs, heredoc{delim, strip})
		case c == '\n' && len(heredocs) > 0:
			toks = append(toks, token{kind: tOp, op: "\n", line: line})
			line++
			i++
			for _, h := range heredocs {
				for {
					if i >= len(src) {
						return nil, &lexError{line, "unterminated here-document"}
					}
					end := strings.IndexByte(src[i:], '\n')
					var l string
					if end < 0 {
						l, i = src[i:], len(src)
					} else {
						l, i = src[i:i+end], i+end+1
					}
					line++
					if h.strip {
						l = strings.TrimLeft(l, "\t")
					}
					if l == h.delim {
						break
					}
				}
			}
			heredocs = nil
		case c == '\n':
			toks = append(toks, token{kind: tOp, op: "\n", line: line})
			line++
			i++
		case c == '>' || c == '<' || (c >= '0' && c <= '9' && i+1 < len(src) && (src[i+1] == '>' || src[i+1] == '<') && (i == 0 || strings.IndexByte(" \t\n;|&", src[i-1]) >= 0)):
			j := i
			if c >= '0' && c <= '9' {
				j++
			}
			op := src[i : j+1]
			j++
			if j < len(src) && (src[j] == '>' || src[j] == '&') {
				op += string(src[j])
				j++
			}
			for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
				j++
			}
			w, n, nl, err := lexWord(src[j:], line)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, &lexError{line, "redirection without a target"}
			}
			target, ok := w.literal()
			if !ok {
				target = "\x00expanded"
			}
			toks = append(toks, token{kind: tOp, op: "redir", redir: op, line: line, parts: []part{{text: target}}})
			i = j + n
			line += nl
		case strings.ContainsRune(";|&(){}!", rune(c)):
			op := string(c)
			if i+1 < len(src) && (src[i:i+2] == ";;" || src[i:i+2] == "&&" || src[i:i+2] == "||") {
				op = src[i : i+2]
			}
			// { } and ! are reserved words only standing alone.
			if (c == '{' || c == '}' || c == '!') && i+1 < len(src) && strings.IndexByte(" \t\n;", src[i+1]) < 0 {
				w, n, nl, err := lexWord(src[i:], line)
				if err != nil {
					return nil, err
				}
				toks = append(toks, w)
				i += n
				line += nl
				continue
			}
			toks = append(toks, token{kind: tOp, op: op, line: line})
			i += len(op)
		default:
			w, n, nl, err := lexWord(src[i:], line)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, &lexError{line, fmt.Sprintf("unexpected %q", c)}
			}
			toks = append(toks, w)
			i += n
			line += nl
		}
	}
	toks = append(toks, token{kind: tEOF, line: line})
	return toks, nil
}

// lexWord reads one word at the start of s: its token, the bytes it took
// and the newlines inside it.
func lexWord(s string, line int) (token, int, int, error) {
	t := token{kind: tWord, line: line}
	var lit strings.Builder
	flush := func(quoted bool) {
		if lit.Len() > 0 || quoted {
			t.parts = append(t.parts, part{text: lit.String(), quoted: quoted})
			lit.Reset()
		}
	}
	i, nl := 0, 0
	inDouble := false
	for i < len(s) {
		c := s[i]
		if !inDouble && strings.IndexByte(" \t\r\n;|&()<>", c) >= 0 {
			break
		}
		switch {
		case c == '`':
			j := i + 1
			for j < len(s) && s[j] != '`' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return t, 0, 0, &lexError{line + nl, "unterminated backquote"}
			}
			nl += strings.Count(s[i:j], "\n")
			flush(inDouble)
			t.parts = append(t.parts, part{param: badParam, text: "command substitution `...`", quoted: inDouble})
			i = j + 1
		case c == '\'' && !inDouble:
			flush(false)
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return t, 0, 0, &lexError{line + nl, "unterminated single quote"}
			}
			lit.WriteString(s[i+1 : i+1+j])
			nl += strings.Count(s[i+1:i+1+j], "\n")
			flush(true)
			i += j + 2
		case c == '"':
			if inDouble {
				flush(true)
			} else {
				flush(false)
			}
			inDouble = !inDouble
			i++
		case c == '\\':
			if i+1 >= len(s) {
				return t, 0, 0, &lexError{line + nl, "backslash at end of script"}
			}
			n := s[i+1]
			switch {
			case n == '\n':
				nl++
			case inDouble && strings.IndexByte("$`\"\\", n) < 0:
				lit.WriteByte('\\')
				lit.WriteByte(n)
			default:
				lit.WriteByte(n)
			}
			i += 2
		case c == '$':
			name, n, err := lexParam(s[i:])
			var bad *badExpansion
			if errors.As(err, &bad) {
				flush(inDouble)
				nl += strings.Count(s[i:i+bad.n], "\n")
				t.parts = append(t.parts, part{param: badParam, text: bad.what, quoted: inDouble})
				i += bad.n
				continue
			}
			if err != nil {
				return t, 0, 0, &lexError{line + nl, err.Error()}
			}
			flush(inDouble)
			if inDouble {
				// An empty quoted literal was flushed; drop it, the
				// parameter carries the quoting.
				if k := len(t.parts) - 1; k >= 0 && t.parts[k].text == "" && t.parts[k].param == "" {
					t.parts = t.parts[:k]
				}
			}
			t.parts = append(t.parts, part{param: name, quoted: inDouble})
			i += n
		default:
			if c == '\n' {
				nl++
			}
			lit.WriteByte(c)
			i++
		}
	}
	if inDouble {
		return t, 0, 0, &lexError{line, "unterminated double quote"}
	}
	flush(false)
	return t, i, nl, nil
}

// params are the expansions lexParam accepts; eval gives their values.
// ${NAME:-} and ${NAME:+WORD} forms are accepted for DPKG_ROOT only, the
// one debhelper writes.
func lexParam(s string) (string, int, error) {
	if len(s) < 2 {
		return "", 0, fmt.Errorf("lone $")
	}
	switch c := s[1]; {
	case c == '(':
		depth, j := 0, 1
		for ; j < len(s); j++ {
			switch s[j] {
			case '(':
				depth++
			case ')':
				depth--
			case '\'':
				if k := strings.IndexByte(s[j+1:], '\''); k >= 0 {
					j += k + 1
				}
			case '\\':
				j++
			}
			if depth == 0 {
				break
			}
		}
		if depth != 0 {
			return "", 0, fmt.Errorf("unterminated $(")
		}
		return "", 0, &badExpansion{"command substitution $(...)", j + 1}
	case c >= '0' && c <= '9', c == '@', c == '#', c == '?':
		return string(c), 2, nil
	case c == '{':
		j := strings.IndexByte(s, '}')
		if j < 0 {
			return "", 0, fmt.Errorf("unterminated ${")
		}
		body := s[2:j]
		switch body {
		case "DPKG_ROOT", "DPKG_ROOT:-", "DPKG_ROOT-":
			return "DPKG_ROOT", j + 1, nil
		case "1", "2", "3", "@", "DPKG_MAINTSCRIPT_PACKAGE", "DPKG_MAINTSCRIPT_NAME":
			return body, j + 1, nil
		}
		if strings.HasPrefix(body, "DPKG_ROOT:+") {
			// Empty DPKG_ROOT: the alternative word vanishes.
			return "\x00empty", j + 1, nil
		}
		return "", 0, &badExpansion{"expansion ${" + body + "}", j + 1}
	case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		j := 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		return s[1:j], j, nil
	}
	return "", 0, &badExpansion{"expansion " + s[:2], 2}
}

// badParam names a part that cannot be expanded without running
// something; its text says what it is. The error comes only if the
// evaluator reaches it.
const badParam = "\x00bad"

type badExpansion struct {
	what string
	n    int
}

func (e *badExpansion) Error() string { return e.what }
