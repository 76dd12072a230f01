package render

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Filesystem is one org.osbuild.fstab entry.
type Filesystem struct {
	Device    string      `json:"device"`
	UUID      string      `json:"uuid"`
	Label     string      `json:"label"`
	PartLabel string      `json:"partlabel"`
	Path      string      `json:"path"`
	VFSType   *string     `json:"vfs_type"`
	Options   *string     `json:"options"`
	Freq      json.Number `json:"freq"`
	Passno    json.Number `json:"passno"`
}

// Fstab renders /etc/fstab: one tab-separated line per filesystem, source
// (UUID=, LABEL=, PARTLABEL= or the device), path, type, options, freq and
// passno, with osbuild's defaults "none", "defaults", 0 and 0.
func Fstab(fss []Filesystem) (string, error) {
	var b strings.Builder
	for i, fs := range fss {
		var src string
		n := 0
		for _, s := range []struct{ prefix, v string }{
			{"", fs.Device}, {"UUID=", fs.UUID}, {"LABEL=", fs.Label}, {"PARTLABEL=", fs.PartLabel},
		} {
			if s.v != "" {
				src, n = s.prefix+s.v, n+1
			}
		}
		if n != 1 {
			return "", fmt.Errorf("option \"filesystems[%d]\": give exactly one of device, uuid, label and partlabel", i)
		}
		if fs.Path == "" {
			return "", fmt.Errorf("option \"filesystems[%d].path\": missing", i)
		}
		fields := []string{src, fs.Path, deref(fs.VFSType, "none"), deref(fs.Options, "defaults"),
			number(fs.Freq), number(fs.Passno)}
		for _, f := range fields {
			if f == "" || strings.ContainsAny(f, " \t\n") {
				return "", fmt.Errorf("option \"filesystems[%d]\": field %q is empty or holds whitespace", i, f)
			}
		}
		b.WriteString(strings.Join(fields, "\t") + "\n")
	}
	return b.String(), nil
}

func number(n json.Number) string {
	if n == "" {
		return "0"
	}
	return n.String()
}

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

// KernelCmdline renders /etc/kernel/cmdline as osbuild does, without a
// trailing newline: "root=UUID=<uuid> <opts>" (the space stays even when
// opts is empty), or opts alone without a uuid. A maxSize above zero is the
// kernel's command line size, terminating NUL included.
func KernelCmdline(uuid, opts string, maxSize int) (string, error) {
	// osbuild joins the non-empty parts: no stray space either way.
	var parts []string
	if uuid != "" {
		parts = append(parts, "root=UUID="+uuid)
	}
	if opts != "" {
		parts = append(parts, opts)
	}
	s := strings.Join(parts, " ")
	if strings.ContainsAny(s, "\n\x00") {
		return "", fmt.Errorf("option \"kernel_opts\": holds a newline or NUL")
	}
	if maxSize > 0 && len(s)+1 > maxSize {
		return "", fmt.Errorf("option \"kernel_cmdline_size\": the command line is %d bytes, more than %d allows", len(s), maxSize)
	}
	return s, nil
}

// SetEnv sets KEY=value lines in an environment-style file (locale.conf,
// vconsole.conf), replacing the first assignment of each key in place,
// dropping later ones and appending keys that were absent; other lines are
// kept. Keys are set in the order given.
func SetEnv(text string, kv [][2]string) string {
	var lines []string
	if t := strings.TrimSuffix(text, "\n"); t != "" {
		lines = strings.Split(t, "\n")
	}
	for _, p := range kv {
		line := p[0] + "=" + p[1]
		done := false
		out := lines[:0:0]
		for _, l := range lines {
			if k, _, ok := strings.Cut(strings.TrimSpace(l), "="); ok && strings.TrimSpace(k) == p[0] {
				if done {
					continue
				}
				l, done = line, true
			}
			out = append(out, l)
		}
		if !done {
			out = append(out, line)
		}
		lines = out
	}
	return strings.Join(lines, "\n") + "\n"
}

// X11Keyboard renders /etc/X11/xorg.conf.d/00-keyboard.conf as
// systemd-localed writes it.
func X11Keyboard(layouts []string) string {
	return "# Written by kiln's org.osbuild.keymap stage, in the format systemd-localed(8)\n" +
		"# writes and reads. Use localectl(1) to change it on a running system.\n" +
		"Section \"InputClass\"\n" +
		"        Identifier \"system-keyboard\"\n" +
		"        MatchIsKeyboard \"on\"\n" +
		"        Option \"XkbLayout\" \"" + strings.Join(layouts, ",") + "\"\n" +
		"EndSection\n"
}

// ResolvConf renders /etc/resolv.conf: a search line, then nameservers.
func ResolvConf(nameservers, search []string) string {
	var b strings.Builder
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, ns := range nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	return b.String()
}

// ModprobeCommand is one org.osbuild.modprobe command.
type ModprobeCommand struct {
	Command    string `json:"command"`
	ModuleName string `json:"modulename"`
	Cmdline    string `json:"cmdline"`
}

// Modprobe renders a modprobe.d file.
func Modprobe(cmds []ModprobeCommand) (string, error) {
	var b strings.Builder
	for i, c := range cmds {
		if c.ModuleName == "" {
			return "", fmt.Errorf("option \"commands[%d].modulename\": empty", i)
		}
		switch c.Command {
		case "blacklist":
			fmt.Fprintf(&b, "blacklist %s\n", c.ModuleName)
		case "install":
			if c.Cmdline == "" {
				return "", fmt.Errorf("option \"commands[%d].cmdline\": empty", i)
			}
			fmt.Fprintf(&b, "install %s %s\n", c.ModuleName, c.Cmdline)
		default:
			return "", fmt.Errorf("option \"commands[%d].command\": %q is not blacklist or install", i, c.Command)
		}
	}
	return b.String(), nil
}

// SysctlParam is one org.osbuild.sysctld entry. A key starting with "-"
// and no value excludes the parameters a glob matches; "-key" with a value
// sets the parameter and ignores a failure to set it (sysctl.d(5)).
type SysctlParam struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// Sysctld renders a sysctl.d file with osbuild's spacing, "key = value".
// An empty value is written as no value, as osbuild writes it: for "-key"
// that is an exclusion. A plain key without a value is refused where
// osbuild writes a bare "key" line that systemd-sysctl ignores with a
// warning ("Line is not an assignment").
func Sysctld(params []SysctlParam) (string, error) {
	var b strings.Builder
	for i, p := range params {
		hasValue := p.Value != nil && *p.Value != ""
		switch {
		case p.Key == "" || p.Key == "-":
			return "", fmt.Errorf("option \"config[%d].key\": empty", i)
		case strings.ContainsAny(p.Key, "\n=") || p.Value != nil && strings.Contains(*p.Value, "\n"):
			return "", fmt.Errorf("option \"config[%d]\": a key holds no newline or \"=\", a value no newline", i)
		case hasValue:
			b.WriteString(p.Key + " = " + *p.Value + "\n")
		case strings.HasPrefix(p.Key, "-"):
			b.WriteString(p.Key + "\n")
		default:
			return "", fmt.Errorf("option \"config[%d].value\": missing or empty for %q (only an excluding \"-\" key stands alone)", i, p.Key)
		}
	}
	return b.String(), nil
}

// Tmpfile is one org.osbuild.tmpfilesd directive.
type Tmpfile struct {
	Type     string  `json:"type"`
	Path     string  `json:"path"`
	Mode     *string `json:"mode"`
	User     *string `json:"user"`
	Group    *string `json:"group"`
	Age      *string `json:"age"`
	Argument *string `json:"argument"`
}

// Tmpfilesd renders a tmpfiles.d file: "type path mode user group age
// argument", fields after the last one given left out and "-" for the
// absent ones before it.
func Tmpfilesd(items []Tmpfile) (string, error) {
	var b strings.Builder
	for i, t := range items {
		if t.Type == "" || t.Path == "" {
			return "", fmt.Errorf("option \"config[%d]\": type and path are required", i)
		}
		fields := []string{t.Type, t.Path}
		opt := []*string{t.Mode, t.User, t.Group, t.Age, t.Argument}
		last := -1
		for j, o := range opt {
			if o != nil {
				last = j
			}
		}
		for j := 0; j <= last; j++ {
			fields = append(fields, deref(opt[j], "-"))
		}
		b.WriteString(strings.Join(fields, " ") + "\n")
	}
	return b.String(), nil
}
