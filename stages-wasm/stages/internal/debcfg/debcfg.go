// Package debcfg holds the pure parts of kiln.deb's configure step
// (stages-wasm/stages/deb_configure.go): the files passwd's shadowconfig
// writes, the trigger interests a package declares, the first-boot unit and
// the deferred list. The stage does the file system work; this package
// only computes bytes, so that it is tested natively.
package debcfg

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Shadow is what `shadowconfig on` leaves on a fresh system whose
// /etc/passwd and /etc/group are still base-passwd's masters.
type Shadow struct {
	// Passwd and Group are the files with every "*" password replaced by
	// "x"; PasswdBackup and GroupBackup (/etc/passwd-, /etc/group-) the
	// files as they were.
	Passwd, Group             []byte
	PasswdBackup, GroupBackup []byte
	// Shadow has "NAME:*:DAYS:0:99999:7:::" per user, DAYS the epoch's day;
	// Gshadow "NAME:*::" per group.
	Shadow, Gshadow []byte
}

// ShadowConfigOn computes shadowconfig's result the way its chrootless
// branch does (passwd 1:4.13, which says it is bit-for-bit what pwconv and
// grpconv give on the masters): sed 's/^\([^:]\+\):\*:/\1:x:/' on both
// files, then one shadow line per user and one gshadow line per group.
// epoch is SOURCE_DATE_EPOCH, which shadowconfig uses for the last change.
func ShadowConfigOn(passwd, group []byte, epoch int64) (*Shadow, error) {
	s := &Shadow{PasswdBackup: passwd, GroupBackup: group}
	var err error
	if s.Passwd, err = starToX(passwd, "/etc/passwd"); err != nil {
		return nil, err
	}
	if s.Group, err = starToX(group, "/etc/group"); err != nil {
		return nil, err
	}
	days := epoch / 86400
	s.Shadow = eachName(s.Passwd, func(n string) string { return fmt.Sprintf("%s:*:%d:0:99999:7:::\n", n, days) })
	s.Gshadow = eachName(s.Group, func(n string) string { return n + ":*::\n" })
	return s, nil
}

func starToX(b []byte, file string) ([]byte, error) {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%s: no newline at the end", file)
	}
	var out bytes.Buffer
	for _, l := range lines(b) {
		name, rest, ok := strings.Cut(l, ":")
		if ok && name != "" && strings.HasPrefix(rest, "*:") {
			l = name + ":x:" + rest[2:]
		}
		out.WriteString(l + "\n")
	}
	return out.Bytes(), nil
}

// eachName is sed "s/^\([^:]\+\):.*/.../": lines without a name and a
// colon are copied as they are.
func eachName(b []byte, f func(string) string) []byte {
	var out bytes.Buffer
	for _, l := range lines(b) {
		name, _, ok := strings.Cut(l, ":")
		if ok && name != "" {
			out.WriteString(f(name))
		} else {
			out.WriteString(l + "\n")
		}
	}
	return out.Bytes()
}

func lines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Interests are the trigger names a triggers control member declares
// interest in (interest, interest-await, interest-noawait), in order.
// Activations are not listed: kiln runs no trigger, so an activation only
// matters through the interested package, which is judged itself.
func Interests(triggers []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(triggers))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "interest", "interest-await", "interest-noawait":
			out = append(out, f[1])
		}
	}
	return out
}

// Deferred is a package kiln left unconfigured and why.
type Deferred struct{ Package, Reason string }

// DeferredList is /var/lib/kiln/deferred-configure: "pkg: reason" lines in
// installation order; line breaks in a reason are flattened so that each
// package stays one line.
func DeferredList(ds []Deferred) []byte {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Package + ": " + strings.Join(strings.Fields(d.Reason), " ") + "\n")
	}
	return []byte(b.String())
}

// Paths of the first-boot configuration.
const (
	UnitName  = "kiln-dpkg-configure.service"
	UnitPath  = "/usr/lib/systemd/system/" + UnitName
	WantsLink = "/etc/systemd/system/multi-user.target.wants/" + UnitName
	Stamp     = "/var/lib/kiln/dpkg-configure-pending"
	ListPath  = "/var/lib/kiln/deferred-configure"
)

// Unit is the first-boot unit. It runs after basic.target (default
// dependencies: file systems mounted read-write, /tmp, sysusers and
// tmpfiles done), because maintainer scripts expect a whole system, and
// before multi-user.target so that services the scripts enable or restart
// come up configured. The stamp is removed only when dpkg succeeds, so a
// failed configure is retried at the next boot.
const Unit = `[Unit]
Description=Configure the Debian packages kiln left unpacked
Documentation=file:` + ListPath + `
ConditionPathExists=` + Stamp + `
Before=multi-user.target

[Service]
Type=oneshot
Environment=DEBIAN_FRONTEND=noninteractive
ExecStart=/usr/bin/dpkg --configure -a
ExecStartPost=/usr/bin/rm -f ` + Stamp + `
TimeoutStartSec=infinity
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`
