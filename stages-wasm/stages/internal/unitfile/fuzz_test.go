package unitfile

import (
	"path"
	"strings"
	"testing"
)

var fuzzUnits = []string{
	"[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target\n",
	"[Install]\nWantedBy=multi-user.target graphical.target\nAlias=dbus-org.x.service\nAlso=x.socket\n",
	"[Install]\nWantedBy=\nRequiredBy=a.target \\\n b.target\nUpheldBy=c.target\n",
	"[Install]\nDefaultInstance=tty1\nWantedBy=getty.target\nAlias=%p-alias@.service\n",
	"[Install]\nAlso=%n\nAlias=%N.service\nWantedBy=%i.target\n",
	"; comment\n# comment\n[Service]\nExecStart=/bin/true\n",
	"[Install]\nAlias=x.socket\n",
	"[Install]\nDefaultInstance=/../../../../x\nWantedBy=multi-user.target\n",
	"\\",
	"[Install",
}

// FuzzParseInstall: any unit text gives lists of non-empty words without
// white space, and a section only when there is one.
func FuzzParseInstall(f *testing.F) {
	for _, u := range fuzzUnits {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, text string) {
		in := ParseInstall(text)
		for _, list := range [][]string{in.WantedBy, in.RequiredBy, in.UpheldBy, in.Alias, in.Also} {
			for _, w := range list {
				if w == "" || strings.ContainsAny(w, " \t\n") {
					t.Errorf("ParseInstall(%q): word %q", text, w)
				}
			}
			if len(list) > 0 && !in.Present {
				t.Errorf("ParseInstall(%q): settings without an [Install] section", text)
			}
		}
	})
}

// FuzzParseName: a name that parses prints back as itself and has no '/'.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"getty@tty1.service", "getty@.service", "multi-user.target", "x.socket", "@x.service", ".service",
		"a.b.c.mount", "x@y@z.timer", "..service", "x", "x.unknown", "a/b.service"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if n.String() != s || strings.ContainsAny(s, "/\x00") || n.Prefix == "" {
			t.Errorf("ParseName(%q) = %+v, prints as %q", s, n, n.String())
		}
	})
}

// FuzzEnable: whatever the unit files in the tree say, and whatever unit
// is named, enabling ends, and every link it asks for lies directly in
// ConfigDir or in one .wants/.requires/.upholds directory there and is
// named as a unit; a link elsewhere would be made anywhere in the tree.
func FuzzEnable(f *testing.F) {
	for _, u := range fuzzUnits {
		f.Add(u, "x.service")
		f.Add(u, "getty@.service")
		f.Add(u, "getty@tty2.service")
	}
	f.Fuzz(func(t *testing.T, text, name string) {
		e := &Enabler{Find: func(n string) (string, string, error) {
			return "/usr/lib/systemd/system/" + n, text, nil
		}}
		if err := e.Enable(name); err != nil {
			return
		}
		for _, l := range e.Links {
			rel, ok := strings.CutPrefix(l.Path, ConfigDir+"/")
			if !ok || path.Clean(l.Path) != l.Path {
				t.Fatalf("Enable(%q) with %q: link %q is not in %s", name, text, l.Path, ConfigDir)
			}
			dir, base := path.Split(rel)
			if dir != "" {
				d := strings.TrimSuffix(dir, "/")
				if strings.Contains(d, "/") || !(strings.HasSuffix(d, ".wants") || strings.HasSuffix(d, ".requires") || strings.HasSuffix(d, ".upholds")) {
					t.Fatalf("Enable(%q) with %q: link %q is in %q", name, text, l.Path, dir)
				}
			}
			if _, err := ParseName(base); err != nil {
				t.Fatalf("Enable(%q) with %q: link %q: %v", name, text, l.Path, err)
			}
		}
	})
}
