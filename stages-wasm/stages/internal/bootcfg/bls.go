package bootcfg

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Entry is a Boot Loader Specification Type #1 entry
// (https://uapi-group.org/specifications/specs/boot_loader_specification/).
type Entry struct {
	Title     string
	Version   string
	MachineID string // 32 hex digits, or ""
	Linux     string
	Initrd    string
	Options   string // the whole kernel command line
	SortKey   string
}

var machineIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidMachineID reports whether s is a machine id as /etc/machine-id
// holds it.
func ValidMachineID(s string) bool { return machineIDRE.MatchString(s) }

// Name is the entry's file name: <machine-id>-<version>.conf as
// kernel-install names it, or <version>.conf without a machine id.
func (e Entry) Name() string {
	if e.MachineID != "" {
		return e.MachineID + "-" + e.Version + ".conf"
	}
	return e.Version + ".conf"
}

// Render is the entry file. Each value is one line: a newline or other
// control character in one would start a key of its own, so it is refused.
func (e Entry) Render() (string, error) {
	if !ValidEntry(e.Version) {
		return "", fmt.Errorf("version %q: %w", e.Version, ErrValue)
	}
	if e.MachineID != "" && !ValidMachineID(e.MachineID) {
		return "", fmt.Errorf("machine id %q: %w", e.MachineID, ErrValue)
	}
	var b strings.Builder
	for _, kv := range [][2]string{
		{"title", e.Title}, {"version", e.Version}, {"machine-id", e.MachineID},
		{"sort-key", e.SortKey}, {"linux", e.Linux}, {"initrd", e.Initrd}, {"options", e.Options},
	} {
		if kv[1] == "" {
			continue
		}
		if strings.ContainsFunc(kv[1], func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", fmt.Errorf("entry %s: %s %q: %w: control character", e.Version, kv[0], kv[1], ErrValue)
		}
		fmt.Fprintf(&b, "%s %s\n", kv[0], kv[1])
	}
	return b.String(), nil
}

// LoaderConf is systemd-boot's loader/loader.conf. def is a glob over the
// entries' names ("" for systemd-boot's own choice, the newest), timeout
// in seconds, -1 for none written.
func LoaderConf(def string, timeout int, consoleMode, editor string) (string, error) {
	var b strings.Builder
	if def != "" {
		if !regexp.MustCompile(`^[A-Za-z0-9._+*~-]{1,200}$`).MatchString(def) {
			return "", fmt.Errorf("default %q: %w", def, ErrValue)
		}
		fmt.Fprintf(&b, "default %s\n", def)
	}
	if timeout >= 0 {
		b.WriteString("timeout " + strconv.Itoa(timeout) + "\n")
	}
	switch consoleMode {
	case "":
	case "0", "1", "2", "auto", "max", "keep":
		b.WriteString("console-mode " + consoleMode + "\n")
	default:
		return "", fmt.Errorf("console-mode %q: %w", consoleMode, ErrValue)
	}
	switch editor {
	case "":
	case "yes", "no":
		b.WriteString("editor " + editor + "\n")
	default:
		return "", fmt.Errorf("editor %q: %w", editor, ErrValue)
	}
	return b.String(), nil
}
