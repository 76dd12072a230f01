//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// adminDir is dpkg's database in the tree.
const adminDir = "/var/lib/dpkg"

// statusFieldOrder is the order dpkg writes the fields it knows
// (lib/dpkg/parse.c fieldinfos, dpkg 1.21); the fields it does not know
// follow in the order the control file has them.
var statusFieldOrder = []string{
	"Package", "Essential", "Protected", "Status", "Priority", "Section",
	"Installed-Size", "Origin", "Maintainer", "Bugs", "Architecture",
	"Multi-Arch", "Source", "Version", "Config-Version", "Replaces",
	"Provides", "Depends", "Pre-Depends", "Recommends", "Suggests",
	"Breaks", "Conflicts", "Enhances", "Conffiles", "Filename", "Size",
	"MD5sum", "MSDOS-Filename", "Description", "Triggers-Pending",
	"Triggers-Awaited",
}

var relationFields = map[string]bool{
	"Replaces": true, "Provides": true, "Depends": true, "Pre-Depends": true,
	"Recommends": true, "Suggests": true, "Breaks": true, "Conflicts": true,
	"Enhances": true,
}

// statusEntry makes a package's stanza in dpkg's status from its control
// fields, the status and the Conffiles value.
func statusEntry(control []debField, status string, conffiles []string) ([]debField, error) {
	known := map[string]string{}
	var rest []debField
	for _, f := range control {
		canon := ""
		for _, k := range statusFieldOrder {
			if strings.EqualFold(k, f.Name) {
				canon = k
				break
			}
		}
		if canon == "" {
			rest = append(rest, f)
			continue
		}
		v := f.Value
		switch {
		case relationFields[canon]:
			deps, err := parseRelations(v)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", canon, err)
			}
			v = formatRelations(deps)
		case canon == "Essential" || canon == "Protected":
			// dpkg writes these booleans only when they are "yes".
			if v != "yes" {
				continue
			}
		}
		known[canon] = v
	}
	known["Status"] = status
	delete(known, "Conffiles")
	if len(conffiles) > 0 {
		known["Conffiles"] = "\n " + strings.Join(conffiles, "\n ")
	}
	var out []debField
	for _, k := range statusFieldOrder {
		if v, ok := known[k]; ok {
			out = append(out, debField{k, v})
		}
	}
	return append(out, rest...), nil
}

func writeParagraph(b *strings.Builder, fields []debField) {
	for _, f := range fields {
		b.WriteString(f.Name)
		b.WriteString(":")
		if f.Value != "" && f.Value[0] != '\n' {
			b.WriteString(" ")
		}
		b.WriteString(f.Value)
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// installedPkg is a package dpkg's database in the tree already records.
type installedPkg struct {
	key     string // name, or name:arch for Multi-Arch: same
	fields  []debField
	name    string
	version string
	arch    string
	status  string
	// provides are the package's Provides, for Pre-Depends.
	provides []relation
}

// dpkgDB is the tree's dpkg database as kiln.deb reads and rewrites it.
type dpkgDB struct {
	pkgs map[string]*installedPkg // by key
	// owner maps each path an installed package lists to that package's
	// key; for directories the last package read wins, which does not
	// matter: only non-directories can conflict.
	owner map[string]string
	// lists holds the installed packages' .list contents, read when a
	// later package takes a file over (Replaces).
	moved map[string]map[string]bool // key -> paths taken away
}

func infoKey(name, arch, multiArch string) string {
	if multiArch == "same" {
		return name + ":" + arch
	}
	return name
}

func readDB() (*dpkgDB, error) {
	db := &dpkgDB{pkgs: map[string]*installedPkg{}, owner: map[string]string{}, moved: map[string]map[string]bool{}}
	text, ok, err := readOptional(path.Join(adminDir, "status"))
	if err != nil || !ok {
		return db, err
	}
	paras, err := parseParagraphs(text)
	if err != nil {
		return nil, fmt.Errorf("%s/status: %w", adminDir, err)
	}
	for _, p := range paras {
		ip := &installedPkg{
			fields: p, name: field(p, "Package"), version: field(p, "Version"),
			arch: field(p, "Architecture"), status: field(p, "Status"),
		}
		ip.key = infoKey(ip.name, ip.arch, field(p, "Multi-Arch"))
		if deps, err := parseRelations(field(p, "Provides")); err == nil {
			for _, alts := range deps {
				ip.provides = append(ip.provides, alts...)
			}
		}
		db.pkgs[ip.key] = ip
		list, ok, err := readOptional(path.Join(adminDir, "info", ip.key+".list"))
		if err != nil {
			return nil, err
		}
		if ok {
			for _, l := range strings.Split(strings.TrimSuffix(list, "\n"), "\n") {
				db.owner[l] = ip.key
			}
		}
	}
	return db, nil
}

// takeOver records that path p leaves package key's lists.
func (db *dpkgDB) takeOver(key, p string) {
	if db.moved[key] == nil {
		db.moved[key] = map[string]bool{}
	}
	db.moved[key][p] = true
}

// rewriteMoved drops the paths later packages took over from the .list of
// packages installed before this stage, as dpkg does; their .md5sums stay
// as they are, as dpkg leaves them.
func (db *dpkgDB) rewriteMoved(current map[string]bool) error {
	keys := make([]string, 0, len(db.moved))
	for k := range db.moved {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if current[key] {
			continue // written whole with this stage's packages
		}
		p := path.Join(adminDir, "info", key+".list")
		text, ok, err := readOptional(p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var keep strings.Builder
		for _, l := range strings.SplitAfter(text, "\n") {
			if l != "" && !db.moved[key][strings.TrimSuffix(l, "\n")] {
				keep.WriteString(l)
			}
		}
		if err := putFile(p, []byte(keep.String()), 0o644, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// writeAdmin writes the files an admin directory needs besides the
// packages' own (what dpkg --root makes on its first install, and the
// empty "available" debootstrap makes for dselect and --set-selections).
func writeAdmin() error {
	for _, d := range []string{adminDir, adminDir + "/info", adminDir + "/updates", adminDir + "/triggers", adminDir + "/alternatives"} {
		if err := mkdirAll(d, 0o755, 0, 0); err != nil {
			return err
		}
	}
	for name, content := range map[string]string{"info/format": "1\n", "available": "", "triggers/Unincorp": ""} {
		p := path.Join(adminDir, name)
		had, err := exists(p)
		if err != nil {
			return err
		}
		if !had {
			if err := putFile(p, []byte(content), 0o644, 0, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeStatus writes the status file, stanzas sorted by package name then
// architecture as dpkg's writedb sorts them.
func (db *dpkgDB) writeStatus() error {
	all := make([]*installedPkg, 0, len(db.pkgs))
	for _, p := range db.pkgs {
		all = append(all, p)
	}
	slices.SortFunc(all, func(a, b *installedPkg) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.arch, b.arch)
	})
	var b strings.Builder
	for _, p := range all {
		writeParagraph(&b, p.fields)
	}
	return putFile(path.Join(adminDir, "status"), []byte(b.String()), 0o644, 0, 0)
}

// infoScripts are the control members dpkg keeps executable in its info
// directory.
var infoScripts = map[string]bool{"preinst": true, "postinst": true, "prerm": true, "postrm": true, "config": true}

// removeStaleInfo removes the info files of an earlier version of key.
func removeStaleInfo(key string) error {
	entries, err := os.ReadDir(path.Join(adminDir, "info"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		// "foo.list" is foo's, "foo.bar.list" the package foo.bar's: the
		// members dpkg keeps have no dot in their names.
		if ext, ok := strings.CutPrefix(e.Name(), key+"."); ok && !strings.Contains(ext, ".") {
			if err := os.Remove(path.Join(adminDir, "info", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
