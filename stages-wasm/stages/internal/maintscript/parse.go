package maintscript

import "fmt"

// node is a parsed piece of script.
type node interface{ pos() int }

type cmdNode struct {
	line   int
	words  []token
	redirs []token
}

type pipeNode struct {
	line int
	neg  bool
	cmds []node
}

type andOrNode struct {
	line  int
	first node
	ops   []string
	rest  []node
}

type listNode struct {
	line  int
	items []node
}

type ifNode struct {
	line   int
	conds  []node
	bodies []node
	els    node // nil without else
}

type caseItem struct {
	pats []token
	body node
}

type caseNode struct {
	line  int
	word  token
	items []caseItem
}

type funcNode struct {
	line int
	name string
	body node
}

type groupNode struct {
	line int
	body node
}

// loopNode is a for, while or until loop: parsed so that a script holding
// one in code that does not run can still be judged, never evaluated.
type loopNode struct {
	line int
	kind string
}

func (n *cmdNode) pos() int   { return n.line }
func (n *pipeNode) pos() int  { return n.line }
func (n *andOrNode) pos() int { return n.line }
func (n *listNode) pos() int  { return n.line }
func (n *ifNode) pos() int    { return n.line }
func (n *caseNode) pos() int  { return n.line }
func (n *funcNode) pos() int  { return n.line }
func (n *groupNode) pos() int { return n.line }
func (n *loopNode) pos() int  { return n.line }

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

// next consumes a token; the final EOF is never consumed.
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// isWord reports whether the next token is the unquoted word w.
func (p *parser) isWord(w string) bool {
	t := p.peek()
	if t.kind != tWord {
		return false
	}
	s, ok := t.literal()
	return ok && s == w
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.op == op
}

func (p *parser) errf(format string, args ...any) error {
	return &lexError{p.peek().line, fmt.Sprintf(format, args...)}
}

func (p *parser) skipNewlines() {
	for p.isOp("\n") {
		p.i++
	}
}

func (p *parser) expectWord(w string) error {
	p.skipNewlines()
	if !p.isWord(w) {
		return p.errf("expected %q", w)
	}
	p.i++
	return nil
}

// terminators end a list: the reserved words that close or continue a
// compound command.
var terminators = map[string]bool{"then": true, "elif": true, "else": true, "fi": true, "esac": true, "do": true, "done": true, "}": true}

// parseList reads and-or lists separated by ; & or newlines up to a
// terminator, ;; , ) or the end.
func (p *parser) parseList() (node, error) {
	l := &listNode{line: p.peek().line}
	for {
		p.skipNewlines()
		t := p.peek()
		if t.kind == tEOF || (t.kind == tOp && (t.op == ";;" || t.op == ")" || t.op == "}")) {
			return l, nil
		}
		if t.kind == tWord {
			if s, ok := t.literal(); ok && terminators[s] {
				return l, nil
			}
		}
		n, err := p.parseAndOr()
		if err != nil {
			return nil, err
		}
		l.items = append(l.items, n)
		if p.isOp(";") || p.isOp("&") {
			if p.isOp("&") {
				return nil, p.errf("background command (&)")
			}
			p.i++
		}
	}
}

func (p *parser) parseAndOr() (node, error) {
	first, err := p.parsePipe()
	if err != nil {
		return nil, err
	}
	n := &andOrNode{line: first.pos(), first: first}
	for p.isOp("&&") || p.isOp("||") {
		n.ops = append(n.ops, p.next().op)
		p.skipNewlines()
		r, err := p.parsePipe()
		if err != nil {
			return nil, err
		}
		n.rest = append(n.rest, r)
	}
	return n, nil
}

func (p *parser) parsePipe() (node, error) {
	n := &pipeNode{line: p.peek().line}
	if p.isOp("!") || p.isWord("!") {
		p.i++
		n.neg = true
	}
	for {
		c, err := p.parseCommand()
		if err != nil {
			return nil, err
		}
		n.cmds = append(n.cmds, c)
		if !p.isOp("|") {
			return n, nil
		}
		p.i++
		p.skipNewlines()
	}
}

func (p *parser) parseCommand() (node, error) {
	t := p.peek()
	line := t.line
	switch {
	case p.isWord("if"):
		p.i++
		n := &ifNode{line: line}
		for {
			c, err := p.parseList()
			if err != nil {
				return nil, err
			}
			if err := p.expectWord("then"); err != nil {
				return nil, err
			}
			b, err := p.parseList()
			if err != nil {
				return nil, err
			}
			n.conds, n.bodies = append(n.conds, c), append(n.bodies, b)
			p.skipNewlines()
			if p.isWord("elif") {
				p.i++
				continue
			}
			if p.isWord("else") {
				p.i++
				if n.els, err = p.parseList(); err != nil {
					return nil, err
				}
			}
			return n, p.expectWord("fi")
		}
	case p.isWord("case"):
		p.i++
		w := p.next()
		if w.kind != tWord {
			return nil, p.errf("case without a word")
		}
		if err := p.expectWord("in"); err != nil {
			return nil, err
		}
		n := &caseNode{line: line, word: w}
		for {
			p.skipNewlines()
			if p.isWord("esac") {
				p.i++
				return n, nil
			}
			if p.isOp("(") {
				p.i++
			}
			var it caseItem
			for {
				pt := p.next()
				if pt.kind != tWord {
					return nil, &lexError{pt.line, "bad case pattern"}
				}
				it.pats = append(it.pats, pt)
				if p.isOp("|") {
					p.i++
					continue
				}
				if !p.isOp(")") {
					return nil, p.errf("expected ) after case pattern")
				}
				p.i++
				break
			}
			b, err := p.parseList()
			if err != nil {
				return nil, err
			}
			it.body = b
			n.items = append(n.items, it)
			p.skipNewlines()
			if p.isOp(";;") {
				p.i++
			} else if !p.isWord("esac") {
				return nil, p.errf("expected ;; or esac")
			}
		}
	case p.isWord("for"), p.isWord("while"), p.isWord("until"):
		kind, _ := p.next().literal()
		depth := 1
		// Skip to the matching done: the loop is never evaluated.
		for depth > 0 {
			t := p.next()
			if t.kind == tEOF {
				return nil, &lexError{line, "unterminated " + kind + " loop"}
			}
			if s, ok := t.literal(); ok && t.kind == tWord {
				switch s {
				case "for", "while", "until":
					depth++
				case "done":
					depth--
				}
			}
		}
		return &loopNode{line: line, kind: kind}, nil
	case p.isOp("{") || p.isWord("{"):
		p.i++
		b, err := p.parseList()
		if err != nil {
			return nil, err
		}
		if !p.isWord("}") && !p.isOp("}") {
			return nil, p.errf("expected }")
		}
		p.i++
		return &groupNode{line: line, body: b}, nil
	case p.isOp("("):
		p.i++
		b, err := p.parseList()
		if err != nil {
			return nil, err
		}
		if !p.isOp(")") {
			return nil, p.errf("expected )")
		}
		p.i++
		return &groupNode{line: line, body: b}, nil
	}
	// A function definition: NAME ( ) compound.
	if t.kind == tWord && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tOp && p.toks[p.i+1].op == "(" {
		name, ok := t.literal()
		if !ok {
			return nil, p.errf("bad function name")
		}
		p.i += 2
		if !p.isOp(")") {
			return nil, p.errf("expected ) in function definition")
		}
		p.i++
		p.skipNewlines()
		body, err := p.parseCommand()
		if err != nil {
			return nil, err
		}
		return &funcNode{line: line, name: name, body: body}, nil
	}
	c := &cmdNode{line: line}
	for {
		t := p.peek()
		switch {
		case t.kind == tWord:
			c.words = append(c.words, p.next())
			continue
		case t.kind == tOp && t.op == "redir":
			c.redirs = append(c.redirs, p.next())
			continue
		case t.kind == tOp && (t.op == "{" || t.op == "}" || t.op == "!") && len(c.words) > 0:
			// A brace or bang inside a command is an ordinary word.
			p.i++
			c.words = append(c.words, token{kind: tWord, line: t.line, parts: []part{{text: t.op}}})
			continue
		}
		break
	}
	if len(c.words) == 0 && len(c.redirs) == 0 {
		return nil, p.errf("expected a command")
	}
	return c, nil
}

// parse parses a whole script.
func parse(src string) (node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.parseList()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, p.errf("unexpected %q", describe(p.peek()))
	}
	return n, nil
}

func describe(t token) string {
	if t.kind == tOp {
		return t.op
	}
	s, _ := t.literal()
	return s
}
