package accounts

import (
	"strconv"
	"strings"
)

// Table is one colon-separated database file.
type Table struct {
	lines []string
	// Present is false for a file the tree does not have; such a table
	// is written only if an entry was added (shadow files are optional).
	Present bool
	changed bool
}

// ParseTable reads the text of a database file.
func ParseTable(text string, present bool) *Table {
	t := &Table{Present: present}
	text = strings.TrimSuffix(text, "\n")
	if text != "" {
		t.lines = strings.Split(text, "\n")
	}
	return t
}

// String is the file's text, each line ending in a newline.
func (t *Table) String() string {
	if len(t.lines) == 0 {
		return ""
	}
	return strings.Join(t.lines, "\n") + "\n"
}

// Changed reports whether an entry was added or modified.
func (t *Table) Changed() bool { return t.changed }

// Find returns the fields of the entry for name, padded to n fields, and
// its line index, or -1.
func (t *Table) Find(name string, n int) ([]string, int) {
	for i, l := range t.lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, ":")
		if f[0] == name {
			for len(f) < n {
				f = append(f, "")
			}
			return f, i
		}
	}
	return nil, -1
}

// Set replaces line i with fields.
func (t *Table) Set(i int, fields []string) {
	l := strings.Join(fields, ":")
	if t.lines[i] != l {
		t.lines[i] = l
		t.changed = true
	}
}

// Append adds an entry at the end, where shadow-utils puts new ones.
func (t *Table) Append(fields []string) {
	t.lines = append(t.lines, strings.Join(fields, ":"))
	t.changed = true
}

// ids returns the numeric ids in column col of every entry.
func (t *Table) ids(col int) map[int]string {
	ids := map[int]string{}
	for _, l := range t.lines {
		f := strings.Split(l, ":")
		if len(f) <= col || strings.HasPrefix(l, "#") {
			continue
		}
		if id, err := strconv.Atoi(f[col]); err == nil {
			ids[id] = f[0]
		}
	}
	return ids
}

// Defs holds the settings of /etc/login.defs (or /etc/default/useradd)
// that account editing reads.
type Defs map[string]string

// ParseDefs reads "KEY value" lines (login.defs) or "KEY=value" lines
// (default/useradd); '#' starts a comment.
func ParseDefs(text string) Defs {
	d := Defs{}
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			k, v = f[0], f[1]
		}
		d[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return d
}

// Int returns key as an integer (decimal, or octal with a leading 0 as
// login.defs allows), or def when unset or malformed.
func (d Defs) Int(key string, def int) int {
	v, ok := d[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		return def
	}
	return int(n)
}

// Str returns key or def.
func (d Defs) Str(key, def string) string {
	if v, ok := d[key]; ok {
		return v
	}
	return def
}

// Bool reads a yes/no setting.
func (d Defs) Bool(key string, def bool) bool {
	v, ok := d[key]
	if !ok {
		return def
	}
	return strings.EqualFold(v, "yes")
}

// nextID picks a new id as shadow-utils does: one above the highest in use
// in [min, max], or, when that is max already, the lowest free one there.
//
// The range comes from the tree's login.defs, so it is cut to the ids
// there are, 0..MaxID: a UID_MAX past that would write a uid no system
// reads, and one at the top of int made the search wrap around forever.
func nextID(used map[int]string, min, max int) (int, bool) {
	min, max = clampID(min), clampID(max)
	if min > max {
		return 0, false
	}
	free := func(id int) bool {
		_, taken := used[id]
		return !taken
	}
	high := min - 1
	for id := range used {
		if id >= min && id <= max && id > high {
			high = id
		}
	}
	if high < max && free(high+1) {
		return high + 1, true
	}
	for id := min; id <= max; id++ {
		if free(id) {
			return id, true
		}
	}
	return 0, false
}

// MaxID is the largest uid or gid: 2^32-1 is (uid_t)-1, "no id".
const MaxID = 1<<32 - 2

// ValidID reports whether id is a uid or gid a system can hold.
func ValidID(id int) bool { return id >= 0 && id <= MaxID }

func clampID(id int) int { return min(max(id, 0), MaxID) }
