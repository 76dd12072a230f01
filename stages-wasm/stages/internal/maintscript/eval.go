package maintscript

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Env is the invocation a script is judged for.
type Env struct {
	// Package is DPKG_MAINTSCRIPT_PACKAGE.
	Package string
	// Script is DPKG_MAINTSCRIPT_NAME: "preinst" or "postinst".
	Script string
	// Args are the positional parameters: {"install"} for a preinst,
	// {"configure", ""} for a postinst on a fresh install (dpkg passes an
	// empty old version).
	Args []string
	// Lstat answers a test on a path in the tree being built: whether it
	// exists, and if so whether it is a directory, a regular file, a
	// symlink, executable, non-empty. It must not follow a final symlink;
	// the evaluator follows links itself where the test does.
	Stat func(p string) (FileInfo, bool)
}

// FileInfo is what file tests need to know about a path.
type FileInfo struct {
	Dir, Regular, Symlink, Exec bool
	Size                        int64
	// Target is a symlink's target.
	Target string
}

// Alternative is one update-alternatives --install invocation.
type Alternative struct {
	Link, Name, Path string
	Priority         int
	Slaves           []Slave
}

// Slave is one --slave LINK NAME PATH of an Alternative.
type Slave struct {
	Link, Name, Path string
}

// Result is what a script does on the invocation judged.
type Result struct {
	Alternatives []Alternative
	// Ldconfig is set when the script runs ldconfig.
	Ldconfig bool
	// Unknown, when not empty, is why the script's effect is not known:
	// the first construct it would reach that kiln does not reproduce.
	Unknown string
}

// ErrUnknown is wrapped by the error of a construct the evaluator cannot
// decide.
var ErrUnknown = errors.New("not reproduced")

type exitSignal struct{ code int }

func (e *exitSignal) Error() string { return "exit " + strconv.Itoa(e.code) }

type returnSignal struct{ code int }

func (e *returnSignal) Error() string { return "return " + strconv.Itoa(e.code) }

func unknownf(line int, format string, args ...any) error {
	return fmt.Errorf("line %d: %s: %w", line, fmt.Sprintf(format, args...), ErrUnknown)
}

// Analyze judges script for env.
func Analyze(script []byte, env Env) Result {
	n, err := parse(string(script))
	if err != nil {
		return Result{Unknown: "cannot parse: " + err.Error()}
	}
	e := &evaluator{env: env, args: env.Args, vars: map[string]string{}, funcs: map[string]node{}}
	_, err = e.eval(n)
	var ex *exitSignal
	switch {
	case errors.As(err, &ex):
		if ex.code != 0 {
			e.res.Unknown = fmt.Sprintf("exits %d", ex.code)
		}
	case err != nil:
		e.res.Unknown = strings.TrimSuffix(err.Error(), ": "+ErrUnknown.Error())
	}
	if e.res.Unknown != "" {
		e.res.Alternatives, e.res.Ldconfig = nil, false
	}
	return e.res
}

type evaluator struct {
	env   Env
	args  []string
	vars  map[string]string
	funcs map[string]node
	res   Result
	depth int
}

// eval runs n and returns its exit status.
func (e *evaluator) eval(n node) (int, error) {
	switch n := n.(type) {
	case *listNode:
		st := 0
		for _, it := range n.items {
			var err error
			if st, err = e.eval(it); err != nil {
				return st, err
			}
		}
		return st, nil
	case *andOrNode:
		st, err := e.eval(n.first)
		if err != nil {
			return st, err
		}
		for i, op := range n.ops {
			if (op == "&&") != (st == 0) {
				continue
			}
			if st, err = e.eval(n.rest[i]); err != nil {
				return st, err
			}
		}
		return st, nil
	case *pipeNode:
		if len(n.cmds) > 1 {
			return 0, unknownf(n.line, "pipeline")
		}
		st, err := e.eval(n.cmds[0])
		if err != nil {
			return st, err
		}
		if n.neg {
			if st == 0 {
				return 1, nil
			}
			return 0, nil
		}
		return st, nil
	case *ifNode:
		for i, c := range n.conds {
			st, err := e.eval(c)
			if err != nil {
				return st, err
			}
			if st == 0 {
				return e.eval(n.bodies[i])
			}
		}
		if n.els != nil {
			return e.eval(n.els)
		}
		return 0, nil
	case *caseNode:
		w, err := e.expandOne(n.word)
		if err != nil {
			return 0, err
		}
		for _, it := range n.items {
			for _, pt := range it.pats {
				pat, err := e.expandOne(pt)
				if err != nil {
					return 0, err
				}
				if ok, err := path.Match(pat, w); err != nil {
					return 0, unknownf(n.line, "case pattern %q", pat)
				} else if ok {
					return e.eval(it.body)
				}
			}
		}
		return 0, nil
	case *funcNode:
		e.funcs[n.name] = n.body
		return 0, nil
	case *groupNode:
		return e.eval(n.body)
	case *loopNode:
		return 0, unknownf(n.line, "%s loop", n.kind)
	case *cmdNode:
		return e.command(n)
	}
	return 0, fmt.Errorf("maintscript: unknown node %T", n)
}

// expand expands a word into fields: "$@" gives one per argument, an
// unquoted expansion that is empty gives none. Field splitting of other
// unquoted expansions is not done; the values it handles hold no blanks.
func (e *evaluator) expand(t token) ([]string, error) {
	var b strings.Builder
	quoted := false
	for _, p := range t.parts {
		if p.quoted {
			quoted = true
		}
		if p.param == "" {
			b.WriteString(p.text)
			continue
		}
		if p.param == "@" {
			if nonEmpty(t.parts) != 1 {
				return nil, unknownf(t.line, "\"$@\" inside a word")
			}
			return append([]string(nil), e.args...), nil
		}
		if p.param == badParam {
			return nil, unknownf(t.line, "%s", p.text)
		}
		v, err := e.param(t.line, p.param)
		if err != nil {
			return nil, err
		}
		if !p.quoted && strings.ContainsAny(v, " \t\n*?[") {
			return nil, unknownf(t.line, "unquoted $%s would be split or globbed", p.param)
		}
		b.WriteString(v)
	}
	if b.Len() == 0 && !quoted {
		return nil, nil
	}
	return []string{b.String()}, nil
}

func (e *evaluator) expandOne(t token) (string, error) {
	fs, err := e.expand(t)
	if err != nil {
		return "", err
	}
	return strings.Join(fs, " "), nil
}

func (e *evaluator) param(line int, name string) (string, error) {
	switch name {
	case badParam:
		return "", unknownf(line, "expansion")
	case "\x00empty", "DPKG_ROOT":
		return "", nil
	case "DPKG_MAINTSCRIPT_PACKAGE":
		return e.env.Package, nil
	case "DPKG_MAINTSCRIPT_NAME":
		return e.env.Script, nil
	case "#":
		return strconv.Itoa(len(e.args)), nil
	case "0":
		return e.env.Script, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n <= len(e.args) {
			return e.args[n-1], nil
		}
		return "", nil
	}
	if v, ok := e.vars[name]; ok {
		return v, nil
	}
	return "", unknownf(line, "expansion of $%s", name)
}

// command runs a simple command.
func (e *evaluator) command(c *cmdNode) (int, error) {
	for _, r := range c.redirs {
		target := r.parts[0].text
		switch {
		case target == "/dev/null", (r.redir == ">&" || r.redir == "1>&" || r.redir == "2>&") && (target == "1" || target == "2"):
		default:
			return 0, unknownf(c.line, "redirection %s%s", r.redir, target)
		}
	}
	if len(c.words) == 1 {
		if ok, err := e.assign(c.words[0]); ok || err != nil {
			return 0, err
		}
	}
	words := c.words
	var argv []string
	for _, w := range words {
		fs, err := e.expand(w)
		if err != nil {
			return 0, err
		}
		argv = append(argv, fs...)
	}
	if len(argv) == 0 {
		return 0, nil
	}
	name, args := argv[0], argv[1:]
	if body, ok := e.funcs[name]; ok {
		if e.depth > 20 {
			return 0, unknownf(c.line, "function recursion")
		}
		saved := e.args
		e.args, e.depth = args, e.depth+1
		st, err := e.eval(body)
		e.args, e.depth = saved, e.depth-1
		var ret *returnSignal
		if errors.As(err, &ret) {
			return ret.code, nil
		}
		return st, err
	}
	switch name {
	case "true", ":":
		return 0, nil
	case "export", "local", "readonly", "unset":
		// Variables matter only to commands the script runs, and any
		// command that is not reproduced makes it unknown anyway.
		for _, w := range c.words[1:] {
			if ok, err := e.assign(w); err != nil {
				return 0, err
			} else if !ok {
				n, _ := w.literal()
				if !validName(n) {
					return 0, unknownf(c.line, "%s %s", name, n)
				}
				if name == "unset" {
					delete(e.vars, n)
				} else if _, set := e.vars[n]; !set {
					e.vars[n] = ""
				}
			}
		}
		return 0, nil
	case "false":
		return 1, nil
	case "echo", "printf":
		return 0, nil
	case "set":
		for _, a := range args {
			if strings.TrimLeft(a, "-+eux") != "" {
				return 0, unknownf(c.line, "set %s", a)
			}
		}
		return 0, nil
	case "exit", "return":
		code := 0
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return 0, unknownf(c.line, "%s %q", name, args[0])
			}
			code = n
		}
		if name == "return" {
			if e.depth == 0 {
				return 0, unknownf(c.line, "return outside a function")
			}
			return code, &returnSignal{code}
		}
		return code, &exitSignal{code}
	case "[", "test":
		if name == "[" {
			if len(args) == 0 || args[len(args)-1] != "]" {
				return 0, unknownf(c.line, "[ without ]")
			}
			args = args[:len(args)-1]
		}
		ok, err := e.test(c.line, args)
		if err != nil {
			return 0, err
		}
		if ok {
			return 0, nil
		}
		return 1, nil
	case "command", "which":
		if name == "command" {
			if len(args) != 2 || args[0] != "-v" {
				return 0, unknownf(c.line, "command %s", strings.Join(args, " "))
			}
			args = args[1:]
		}
		if len(args) != 1 {
			return 0, unknownf(c.line, "%s with %d arguments", name, len(args))
		}
		if e.inPath(args[0]) {
			return 0, nil
		}
		return 1, nil
	case "ldconfig":
		// -r "$DPKG_ROOT/" is libc-bin's own call.
		if len(args) > 0 && !(len(args) == 2 && args[0] == "-r" && args[1] == "/") {
			return 0, unknownf(c.line, "ldconfig %s", strings.Join(args, " "))
		}
		e.res.Ldconfig = true
		return 0, nil
	case "update-alternatives":
		return 0, e.updateAlternatives(c.line, args)
	case "dpkg-maintscript-helper":
		return e.maintscriptHelper(c.line, args)
	case "deb-systemd-helper":
		return e.systemdHelper(c.line, args)
	}
	return 0, unknownf(c.line, "runs %s", name)
}

// assign performs w if it is an assignment NAME=VALUE.
func (e *evaluator) assign(w token) (bool, error) {
	if len(w.parts) == 0 || w.parts[0].quoted || w.parts[0].param != "" {
		return false, nil
	}
	name, val, ok := strings.Cut(w.parts[0].text, "=")
	if !ok || !validName(name) {
		return false, nil
	}
	rest := token{kind: tWord, line: w.line, parts: append([]part{{text: val}}, w.parts[1:]...)}
	v, err := e.expandOne(rest)
	if err != nil {
		return false, err
	}
	e.vars[name] = v
	return true, nil
}

func validName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// inPath is command -v against the tree, with dpkg's PATH for maintainer
// scripts.
func (e *evaluator) inPath(prog string) bool {
	if strings.Contains(prog, "/") {
		fi, ok := e.stat(prog, true)
		return ok && fi.Regular && fi.Exec
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if fi, ok := e.stat(d+"/"+prog, true); ok && fi.Regular && fi.Exec {
			return true
		}
	}
	return false
}

// stat looks p up in the tree, following symlinks (at most 40, as Linux)
// when follow is set.
func (e *evaluator) stat(p string, follow bool) (FileInfo, bool) {
	for range 40 {
		fi, ok := e.env.Stat(path.Clean(p))
		if !ok || !follow || !fi.Symlink {
			return fi, ok
		}
		if path.IsAbs(fi.Target) {
			p = fi.Target
		} else {
			p = path.Join(path.Dir(p), fi.Target)
		}
	}
	return FileInfo{}, false
}

// test evaluates the arguments of test(1): !, -a, -o (with -a binding
// tighter), unary file and string tests, binary string and integer
// comparisons.
func (e *evaluator) test(line int, args []string) (bool, error) {
	if len(args) == 0 {
		return false, nil
	}
	// -o has the lowest precedence, then -a.
	for i := len(args) - 2; i >= 1; i-- {
		if args[i] == "-o" {
			l, err := e.test(line, args[:i])
			if err != nil {
				return false, err
			}
			r, err := e.test(line, args[i+1:])
			return l || r, err
		}
	}
	for i := len(args) - 2; i >= 1; i-- {
		if args[i] == "-a" {
			l, err := e.test(line, args[:i])
			if err != nil {
				return false, err
			}
			r, err := e.test(line, args[i+1:])
			return l && r, err
		}
	}
	if args[0] == "!" {
		v, err := e.test(line, args[1:])
		return !v, err
	}
	switch len(args) {
	case 1:
		return args[0] != "", nil
	case 2:
		op, v := args[0], args[1]
		switch op {
		case "-n":
			return v != "", nil
		case "-z":
			return v == "", nil
		case "-e", "-f", "-d", "-x", "-s", "-L", "-h", "-r":
			if !path.IsAbs(v) {
				return false, unknownf(line, "test %s on relative path %q", op, v)
			}
			fi, ok := e.stat(v, op != "-L" && op != "-h")
			switch op {
			case "-e", "-r":
				return ok, nil
			case "-f":
				return ok && fi.Regular, nil
			case "-d":
				return ok && fi.Dir, nil
			case "-x":
				return ok && (fi.Exec || fi.Dir), nil
			case "-s":
				return ok && fi.Size > 0, nil
			default:
				return ok && fi.Symlink, nil
			}
		}
	case 3:
		l, op, r := args[0], args[1], args[2]
		switch op {
		case "=", "==":
			return l == r, nil
		case "!=":
			return l != r, nil
		case "-eq", "-ne", "-lt", "-gt", "-le", "-ge":
			a, err1 := strconv.Atoi(l)
			b, err2 := strconv.Atoi(r)
			if err1 != nil || err2 != nil {
				return false, unknownf(line, "test %s on non-integers", op)
			}
			return map[string]bool{"-eq": a == b, "-ne": a != b, "-lt": a < b, "-gt": a > b, "-le": a <= b, "-ge": a >= b}[op], nil
		}
	}
	return false, unknownf(line, "test %s", strings.Join(args, " "))
}

// updateAlternatives records --install LINK NAME PATH PRIORITY with its
// --slave groups; any other use is not reproduced.
func (e *evaluator) updateAlternatives(line int, args []string) error {
	for len(args) > 0 && (args[0] == "--quiet" || args[0] == "--force") {
		args = args[1:]
	}
	if len(args) < 5 || args[0] != "--install" {
		return unknownf(line, "update-alternatives %s", strings.Join(args, " "))
	}
	prio, err := strconv.Atoi(args[4])
	if err != nil || prio < -(1<<31) || prio > 1<<31-1 {
		return unknownf(line, "update-alternatives priority %q", args[4])
	}
	a := Alternative{Link: args[1], Name: args[2], Path: args[3], Priority: prio}
	rest := args[5:]
	for len(rest) > 0 {
		if rest[0] != "--slave" || len(rest) < 4 {
			return unknownf(line, "update-alternatives argument %q", rest[0])
		}
		a.Slaves = append(a.Slaves, Slave{Link: rest[1], Name: rest[2], Path: rest[3]})
		rest = rest[4:]
	}
	e.res.Alternatives = append(e.res.Alternatives, a)
	return nil
}

// maintscriptHelper accepts dpkg-maintscript-helper's conffile and
// symlink/directory helpers: on a fresh install (no old version before
// "--"'s arguments) they do nothing, as their manual says.
func (e *evaluator) maintscriptHelper(line int, args []string) (int, error) {
	if len(args) == 2 && args[0] == "supports" {
		return 0, nil
	}
	if len(args) == 0 {
		return 0, unknownf(line, "dpkg-maintscript-helper without arguments")
	}
	switch args[0] {
	case "rm_conffile", "mv_conffile", "symlink_to_dir", "dir_to_symlink":
	default:
		return 0, unknownf(line, "dpkg-maintscript-helper %s", args[0])
	}
	i := 0
	for i < len(args) && args[i] != "--" {
		i++
	}
	if i == len(args) {
		return 0, unknownf(line, "dpkg-maintscript-helper %s without --", args[0])
	}
	after := args[i+1:]
	fresh := len(after) >= 1 && (after[0] == "install" || after[0] == "configure") && (len(after) < 2 || after[1] == "")
	if !fresh {
		return 0, unknownf(line, "dpkg-maintscript-helper %s on an upgrade", args[0])
	}
	return 0, nil
}

// systemdHelper accepts the deb-systemd-helper calls debhelper writes that
// have no effect on a fresh install, and answers was-enabled as it does
// there (true: "was-enabled defaults to true, so new installations run
// enable"). enable itself makes symlinks from the units' [Install]
// sections, which kiln does not reproduce.
func (e *evaluator) systemdHelper(line int, args []string) (int, error) {
	for len(args) > 0 && args[0] == "--quiet" {
		args = args[1:]
	}
	if len(args) == 0 {
		return 0, unknownf(line, "deb-systemd-helper without arguments")
	}
	switch args[0] {
	case "unmask":
		return 0, nil
	case "was-enabled":
		return 0, nil
	case "debian-installed":
		return 1, nil
	}
	return 0, unknownf(line, "deb-systemd-helper %s %s", args[0], strings.Join(args[1:], " "))
}

// nonEmpty counts the parts that are not empty literals (the quotes around
// "$@" leave some).
func nonEmpty(ps []part) int {
	n := 0
	for _, p := range ps {
		if p.param != "" || p.text != "" {
			n++
		}
	}
	return n
}
