package maintscript

import (
	"reflect"
	"strings"
	"testing"
)

// tree is the tree the test scripts are judged against.
var tree = map[string]FileInfo{
	"/usr":                {Dir: true},
	"/usr/bin":            {Dir: true},
	"/usr/bin/touch":      {Regular: true, Exec: true, Size: 10},
	"/usr/bin/mawk":       {Regular: true, Exec: true, Size: 10},
	"/bin":                {Symlink: true, Target: "usr/bin"},
	"/etc":                {Dir: true},
	"/etc/init.d":         {Dir: true},
	"/etc/init.d/foo":     {Regular: true, Exec: true, Size: 3},
	"/usr/sbin":           {Dir: true},
	"/usr/sbin/systemctl": {Regular: true, Exec: true, Size: 3},
}

func stat(p string) (FileInfo, bool) { fi, ok := tree[p]; return fi, ok }

var postinst = Env{Package: "foo", Script: "postinst", Args: []string{"configure", ""}, Stat: stat}

func TestAnalyze(t *testing.T) {
	awk := Alternative{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/mawk", Priority: 5, Slaves: []Slave{
		{"/usr/share/man/man1/awk.1.gz", "awk.1.gz", "/usr/share/man/man1/mawk.1.gz"},
		{"/usr/bin/nawk", "nawk", "/usr/bin/mawk"},
	}}
	tests := []struct {
		name, script string
		env          *Env
		alts         []Alternative
		ldconfig     bool
		unknown      string // substring; "" for a known effect
	}{
		{name: "empty", script: "#!/bin/sh\nset -e\n\nexit 0\n"},
		{name: "debhelper alternatives", script: `#!/bin/sh
set -e
# Automatically added by dh_installalternatives
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
        update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \
            --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \
            --slave '/usr/bin/nawk' nawk "/usr/bin/mawk"
fi
`, alts: []Alternative{awk}},
		{name: "case configure", script: `set -e
case "$1" in
    configure|abort-remove)
	update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz --slave /usr/bin/nawk nawk /usr/bin/mawk
    ;;
    abort-upgrade) ;;
    *)
	echo "postinst called with unknown argument \` + "`$1'" + `" >&2
	exit 1
    ;;
esac
exit 0
`, alts: []Alternative{awk}},
		{name: "upgrade branch not taken", script: `set -e
cleanup () {
	/usr/share/foo/clean-up "$@" x86_64-linux-gnu
}
if [ -n "$2" ] && ! cleanup; then
	echo "$0: Trying cleanup again"
	cleanup --verbose
fi
if dpkg --compare-versions "$2" lt 1.2 && false; then rm -rf /; fi
`, unknown: "runs dpkg"},
		{name: "upgrade-only function", script: `set -e
cleanup () {
	/usr/share/foo/clean-up "$@" x86_64-linux-gnu
}
if [ -n "$2" ] && ! cleanup; then
	cleanup --verbose
fi
`},
		{name: "file test on the tree", script: `set -e
if [ "$1" = 'configure' -a ! -e "$DPKG_ROOT/usr/bin/touch" ]; then
  ln -s /bin/touch "$DPKG_ROOT/usr/bin/touch"
fi
`},
		{name: "file test true runs an unknown command", script: `set -e
if [ "$1" = 'configure' -a ! -e "$DPKG_ROOT/usr/bin/nothere" ]; then
  ln -s /bin/touch "$DPKG_ROOT/usr/bin/nothere"
fi
`, unknown: "line 3: runs ln"},
		{name: "systemd block", script: `set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] ; then
	deb-systemd-helper unmask 'foo.service' >/dev/null || true
	if deb-systemd-helper --quiet was-enabled 'foo.service'; then
		deb-systemd-helper enable 'foo.service' >/dev/null || true
	else
		deb-systemd-helper update-state 'foo.service' >/dev/null || true
	fi
fi
`, unknown: "deb-systemd-helper enable foo.service"},
		{name: "service start skipped outside systemd", script: `set -e
if [ "$1" = "configure" ] ; then
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		deb-systemd-invoke start 'foo.service' >/dev/null || true
	fi
fi
`},
		{name: "sysv links", script: `if [ "$1" = "configure" ] ; then
	if [ -x "/etc/init.d/foo" ]; then
		update-rc.d foo defaults >/dev/null || exit 1
	fi
fi
`, unknown: "runs update-rc.d"},
		{name: "maintscript-helper", script: "set -e\ndpkg-maintscript-helper rm_conffile /etc/cron.daily/foo 1:4.7-2\\~ -- \"$@\"\ndpkg-maintscript-helper symlink_to_dir /usr/share/doc/foo bar 5.30.0-1 foo -- \"$@\"\n"},
		{name: "maintscript-helper on upgrade", env: &Env{Script: "postinst", Args: []string{"configure", "1.0"}, Stat: stat},
			script: "dpkg-maintscript-helper rm_conffile /etc/x 2 -- \"$@\"\n", unknown: "on an upgrade"},
		{name: "ldconfig", script: "set -e\nif [ \"$1\" = \"configure\" ]; then\n\tldconfig\nfi\n", ldconfig: true},
		{name: "command -v", script: "if [ -x \"$(command -v systemd-tmpfiles)\" ]; then :; fi\n", unknown: "command substitution"},
		{name: "command -v tree", script: "if command -v systemctl >/dev/null; then exit 0; fi\nrm /x\n"},
		{name: "variable alternative", script: "update-alternatives --install /usr/bin/x x $target 10\n", unknown: "expansion of $target"},
		{name: "assigned variable alternative", script: "t=/usr/bin/mawk\nupdate-alternatives --install /usr/bin/awk awk \"$t\" 5\n",
			alts: []Alternative{{Link: "/usr/bin/awk", Name: "awk", Path: "/usr/bin/mawk", Priority: 5}}},
		{name: "other update-alternatives", script: "update-alternatives --set awk /usr/bin/mawk\n", unknown: "update-alternatives --set"},
		{name: "bad priority", script: "update-alternatives --install /a a /b ten\n", unknown: "priority"},
		{name: "alternatives dropped when later unknown", script: "update-alternatives --install /a a /b 1\nadduser --system foo\n", unknown: "line 2: runs adduser"},
		{name: "here-document", script: "cat > /etc/foo <<'EOF'\nbar\nEOF\n", unknown: "redirection"},
		{name: "here-document skipped", script: "if false; then cat <<EOF\n$(rm -rf /)\nEOF\nfi\nexit 0\n"},
		{name: "write to a file", script: "echo x > /etc/foo\n", unknown: "redirection >/etc/foo"},
		{name: "debconf", script: ". /usr/share/debconf/confmodule\n", unknown: "runs ."},
		{name: "nonzero exit", script: "exit 3\n", unknown: "exits 3"},
		{name: "pipeline", script: "getent group shadow | grep -q x\n", unknown: "pipeline"},
		{name: "loop", script: "for f in a b; do rm $f; done\n", unknown: "for loop"},
		{name: "loop not run", script: "if false; then for f in a; do while :; do :; done; done; fi\n"},
		{name: "backquotes", script: "x=`uname`\n", unknown: "command substitution `...`"},
		{name: "unparsable", script: "if true; then\n", unknown: "cannot parse"},
		{name: "preinst install", env: &Env{Script: "preinst", Args: []string{"install"}, Stat: stat},
			script: "case \"$1\" in install) ;; upgrade) rm -f /x ;; esac\n"},
		{name: "DPKG_ROOT alternative word", script: "if [ -d /run/systemd ]; then systemd-tmpfiles ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} --create x; fi\n"},
		{name: "recursion", script: "f () { f; }\nf\n", unknown: "recursion"},
		{name: "return", script: "f () { return 1; rm /x; }\nif f; then rm /y; fi\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := postinst
			if tt.env != nil {
				env = *tt.env
			}
			r := Analyze([]byte(tt.script), env)
			if tt.unknown == "" && r.Unknown != "" {
				t.Fatalf("unknown: %s", r.Unknown)
			}
			if tt.unknown != "" && !strings.Contains(r.Unknown, tt.unknown) {
				t.Fatalf("Unknown = %q, want it to contain %q", r.Unknown, tt.unknown)
			}
			if !reflect.DeepEqual(r.Alternatives, tt.alts) {
				t.Errorf("alternatives %+v, want %+v", r.Alternatives, tt.alts)
			}
			if r.Ldconfig != tt.ldconfig {
				t.Errorf("ldconfig %v, want %v", r.Ldconfig, tt.ldconfig)
			}
		})
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		"#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then update-alternatives --install /a a /b 1 --slave /c c /d; fi\n",
		"case \"$1\" in configure) ldconfig ;; *) exit 1 ;; esac\n",
		"f () { [ -n \"$2\" ] && return 1; }\nf \"$@\" || true\n",
		"cat <<-EOF\n\tx\n\tEOF\n", "x=`a`; y=$(b (c)) ${z:-w}", "{ :; }; ( : ) && ! false",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Analyze([]byte(s), postinst)
		if r.Unknown != "" && (len(r.Alternatives) > 0 || r.Ldconfig) {
			t.Fatalf("unknown script kept effects: %+v", r)
		}
	})
}
