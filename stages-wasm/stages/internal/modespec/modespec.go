// Package modespec parses the modes chmod(1) accepts, numeric ("0755") and
// symbolic ("u+x,go-w", "a=rX", "g=u"), and applies them to a file's
// current mode exactly as GNU chmod does under the umask 022 that osbuild
// stages run with. Only the permission, setuid, setgid and sticky bits
// (07777) are involved; file types are the caller's business.
package modespec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Umask is the umask symbolic modes without a "who" respect, as chmod(1)
// does: "+w" alone adds write for the owner only. It is fixed, not read from
// the host, so that the result is the same everywhere.
const Umask = 0o022

const (
	setuid = 0o4000
	setgid = 0o2000
	sticky = 0o1000
	userB  = 0o4700 // bits "u" affects
	groupB = 0o2070
	otherB = 0o1007
)

// Spec is a parsed mode. Apply gives the new mode of a file.
type Spec struct {
	numeric  bool
	num      uint32
	explicit bool // numeric with 5+ digits: set setuid/setgid on dirs too
	clauses  []clause
}

type clause struct {
	who uint32 // mask of bits affected; 0 means "a, minus the umask"
	ops []op
}

type op struct {
	kind  byte   // '+', '-', '='
	perm  uint32 // r/w/x/s/t bits, expressed for all classes
	x     bool   // X: execute if a directory or already executable by someone
	copyC byte   // 'u', 'g', 'o': copy that class's bits; 0 otherwise
}

// Parse parses a chmod(1) mode.
func Parse(s string) (Spec, error) {
	if s == "" {
		return Spec{}, errors.New("empty mode")
	}
	if s[0] >= '0' && s[0] <= '7' {
		n, err := strconv.ParseUint(s, 8, 32)
		if err != nil || n > 0o7777 {
			return Spec{}, fmt.Errorf("mode %q: not an octal mode of at most 07777", s)
		}
		return Spec{numeric: true, num: uint32(n), explicit: len(s) > 4}, nil
	}
	var sp Spec
	for _, part := range strings.Split(s, ",") {
		c, err := parseClause(part)
		if err != nil {
			return Spec{}, fmt.Errorf("mode %q: %w", s, err)
		}
		sp.clauses = append(sp.clauses, c)
	}
	return sp, nil
}

func parseClause(s string) (clause, error) {
	var c clause
	i := 0
	for ; i < len(s) && strings.IndexByte("ugoa", s[i]) >= 0; i++ {
		switch s[i] {
		case 'u':
			c.who |= userB
		case 'g':
			c.who |= groupB
		case 'o':
			c.who |= otherB
		case 'a':
			c.who |= userB | groupB | otherB
		}
	}
	if i == len(s) {
		return c, fmt.Errorf("clause %q has no operator (+, - or =)", s)
	}
	for i < len(s) {
		o := op{kind: s[i]}
		if strings.IndexByte("+-=", o.kind) < 0 {
			return c, fmt.Errorf("clause %q: unexpected %q where +, - or = belongs", s, s[i])
		}
		i++
		if i < len(s) && strings.IndexByte("ugo", s[i]) >= 0 {
			o.copyC = s[i]
			i++
		} else {
			for ; i < len(s) && strings.IndexByte("rwxXst", s[i]) >= 0; i++ {
				switch s[i] {
				case 'r':
					o.perm |= 0o444
				case 'w':
					o.perm |= 0o222
				case 'x':
					o.perm |= 0o111
				case 'X':
					o.x = true
				case 's':
					o.perm |= setuid | setgid
				case 't':
					o.perm |= sticky
				}
			}
		}
		if i < len(s) && strings.IndexByte("+-=", s[i]) < 0 {
			return c, fmt.Errorf("clause %q: unexpected %q", s, s[i])
		}
		c.ops = append(c.ops, o)
	}
	return c, nil
}

// Apply returns the mode (07777 bits) a file with mode cur gets. isDir
// matters for X and because GNU chmod keeps a directory's setuid and setgid
// bits unless the mode names them.
func (sp Spec) Apply(cur uint32, isDir bool) uint32 {
	cur &= 0o7777
	if sp.numeric {
		m := sp.num
		if isDir && !sp.explicit {
			m |= cur & (setuid | setgid)
		}
		return m
	}
	m := cur
	for _, c := range sp.clauses {
		who, umask := c.who, uint32(0)
		if who == 0 {
			who, umask = userB|groupB|otherB, Umask
		}
		for _, o := range c.ops {
			var bits uint32
			switch {
			case o.copyC != 0:
				bits = copyClass(m, o.copyC)
			default:
				bits = o.perm
				if o.x && (isDir || m&0o111 != 0) {
					bits |= 0o111
				}
			}
			// The sticky bit belongs to "o" in who-masks but only "+t"
			// sets it, and only with "a" or "o" (or no who) as GNU does.
			bits &= who &^ umask
			switch o.kind {
			case '+':
				m |= bits
			case '-':
				m &^= bits
			case '=':
				clear := who &^ umask
				if isDir {
					// Keep setuid/setgid of directories unless named.
					clear &^= (setuid | setgid) &^ o.perm
				}
				m = m&^clear | bits
			}
		}
	}
	return m
}

// copyClass spreads the rwx bits of class c in m to all three classes, for
// "g=u" and friends.
func copyClass(m uint32, c byte) uint32 {
	var rwx uint32
	switch c {
	case 'u':
		rwx = (m >> 6) & 7
	case 'g':
		rwx = (m >> 3) & 7
	case 'o':
		rwx = m & 7
	}
	return rwx<<6 | rwx<<3 | rwx
}
