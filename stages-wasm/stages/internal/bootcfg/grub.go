package bootcfg

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrValue is returned for an option value outside the closed grammar the
// stage accepts for it.
var ErrValue = errors.New("value refused")

// FS names a filesystem the way GRUB's search command and the kernel's
// root= find it.
type FS struct {
	UUID  string
	Label string
}

var (
	uuidRE  = regexp.MustCompile(`^([0-9A-Za-z]{8}(-[0-9A-Za-z]{4}){3}-[0-9A-Za-z]{12}|[0-9A-Za-z]{4}-[0-9A-Za-z]{4})$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	// serialRE is GRUB's serial command with its documented options and
	// plain values: the option is raw GRUB script in osbuild.
	serialRE   = regexp.MustCompile(`^serial( --(unit|port|speed|word|parity|stop|base-clock|rtscts)=[0-9A-Za-z,._]+)*$`)
	terminalRE = regexp.MustCompile(`^(console|serial(_[a-z0-9]+)?|gfxterm|vga_text|at_keyboard|usb_keyboard|ofconsole|spkmodem|morse|mda_text)$`)
	entryRE    = regexp.MustCompile(`^[A-Za-z0-9._+:~-]{1,200}$`)
	// defaultRE is written unquoted into /etc/default/grub, shell: no ~.
	defaultRE = regexp.MustCompile(`^(saved|[0-9]{1,4}|[A-Za-z0-9._+-]{1,200})$`)
	distribRE = regexp.MustCompile(`^[A-Za-z0-9 ._()+-]{0,100}$`)
)

// Validate checks f names a filesystem by a UUID or a label kiln writes.
func (f FS) Validate() error {
	switch {
	case f.UUID != "" && f.Label != "":
		return fmt.Errorf("%w: both uuid and label", ErrValue)
	case f.UUID != "":
		if !uuidRE.MatchString(f.UUID) {
			return fmt.Errorf("%w: uuid %q", ErrValue, f.UUID)
		}
	case f.Label != "":
		if !labelRE.MatchString(f.Label) {
			return fmt.Errorf("%w: label %q (want 1-64 of A-Z a-z 0-9 . _ -)", ErrValue, f.Label)
		}
	default:
		return fmt.Errorf("%w: neither uuid nor label", ErrValue)
	}
	return nil
}

// KernelArg is the root= parameter naming f.
func (f FS) KernelArg() string {
	if f.UUID != "" {
		return "UUID=" + f.UUID
	}
	return "LABEL=" + f.Label
}

// search is GRUB's search arguments finding f, as osbuild writes them.
func (f FS) search() string {
	if f.UUID != "" {
		return "--fs-uuid " + f.UUID
	}
	return "--label " + f.Label
}

// Kernel is one kernel in the tree's boot directory.
type Kernel struct {
	Version string // e.g. 6.1.0-50-amd64
	Linux   string // path from the boot filesystem's root, /boot/vmlinuz-... or /vmlinuz-...
	Initrd  string // same for the initramfs; "" when there is none
}

// Grub is the content of grub.cfg and of /etc/default/grub.
type Grub struct {
	Root, Boot FS     // Boot.UUID == "" && Boot.Label == "": no separate /boot
	Dir        string // GRUB's directory name under /boot: "grub2" (osbuild) or "grub" (Debian)
	KernelOpts string // without root=
	Timeout    int
	// CompatVersion 1 keeps osbuild's literal ${serial}, ${terminal_input}
	// and ${terminal_output} in grub.cfg when those are unset, as its
	// compat_version 1 does; 2 leaves them out.
	CompatVersion   int
	Serial          string
	Terminal        []string
	TerminalInput   []string
	TerminalOutput  []string
	TimeoutStyle    string
	Default         string
	Distributor     string
	DisableRecovery *bool
	DisableSubmenu  *bool
	Ignition        bool
	Greenboot       bool
	// BLS says GRUB has the blscfg command (osbuild's way: entries come
	// from /boot/loader/entries); without it, as in Debian bookworm's
	// GRUB, grub.cfg gets a menuentry for each of Kernels.
	BLS     bool
	Kernels []Kernel
	Title   string // menu entry title prefix, e.g. "Debian GNU/Linux"
}

// SeparateBoot says whether /boot is a filesystem of its own.
func (g *Grub) SeparateBoot() bool { return g.Boot.UUID != "" || g.Boot.Label != "" }

// home is the path of the boot directory on the filesystem GRUB reads.
func (g *Grub) home() string {
	if g.SeparateBoot() {
		return "/"
	}
	return "/boot/"
}

func (g *Grub) grubfs() FS {
	if g.SeparateBoot() {
		return g.Boot
	}
	return g.Root
}

// Validate checks every value that reaches a GRUB script or
// /etc/default/grub against its closed grammar; the error names the
// option.
func (g *Grub) Validate() error {
	if err := g.Root.Validate(); err != nil {
		return fmt.Errorf("option \"rootfs\": %w", err)
	}
	if g.SeparateBoot() {
		if err := g.Boot.Validate(); err != nil {
			return fmt.Errorf("option \"bootfs\": %w", err)
		}
	}
	if g.Dir != "grub2" && g.Dir != "grub" {
		return fmt.Errorf("option \"grub_dir\": %w: %q (want grub2 or grub)", ErrValue, g.Dir)
	}
	if _, err := SplitCmdline(g.KernelOpts); err != nil {
		return fmt.Errorf("option \"kernel_opts\": %w", err)
	}
	if g.Timeout < 0 {
		return fmt.Errorf("option \"config.timeout\": %w: %d", ErrValue, g.Timeout)
	}
	if g.Serial != "" && !serialRE.MatchString(g.Serial) {
		return fmt.Errorf("option \"config.serial\": %w: %q is not a GRUB serial command (serial --unit=0 --speed=115200 ...)", ErrValue, g.Serial)
	}
	for name, ts := range map[string][]string{"terminal": g.Terminal, "terminal_input": g.TerminalInput, "terminal_output": g.TerminalOutput} {
		for _, t := range ts {
			if !terminalRE.MatchString(t) {
				return fmt.Errorf("option \"config.%s\": %w: %q is not a GRUB terminal", name, ErrValue, t)
			}
		}
	}
	switch g.TimeoutStyle {
	case "", "hidden", "menu", "countdown":
	default:
		return fmt.Errorf("option \"config.timeout_style\": %w: %q", ErrValue, g.TimeoutStyle)
	}
	if g.Default != "" && !defaultRE.MatchString(g.Default) {
		return fmt.Errorf("option \"config.default\": %w: %q", ErrValue, g.Default)
	}
	if !distribRE.MatchString(g.Distributor) {
		return fmt.Errorf("option \"config.distributor\": %w: %q", ErrValue, g.Distributor)
	}
	return nil
}

// ValidEntry reports whether s can be a saved_entry or menu entry id.
func ValidEntry(s string) bool { return entryRE.MatchString(s) }

const grubCfgTemplate = `
set timeout=${timeout}

# load the grubenv file
load_env

# selection of the next boot entry via variables 'next_entry' and
# ` + "`saved_entry`" + ` present in the 'grubenv' file. Both variables are
# set by grub tools, like grub2-reboot, grub2-set-default

if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi

search --no-floppy --set=root ${search}
set boot=${root}
function load_video {
  insmod all_video
}
${features}${serial}${terminal_input}${terminal_output}
${entries}
`

const ignitionTemplate = `
# Ignition support
set ignition_firstboot=""
if [ -f "${root}ignition.firstboot" ]; then
    # Default networking parameters to be used with ignition.
    set ignition_network_kcmdline=''

    # Source in the ` + "`ignition.firstboot`" + ` file which could override the
    # above $ignition_network_kcmdline with static networking config.
    # This override feature is primarily used by coreos-installer to
    # persist static networking config provided during install to the
    # first boot of the machine.
    source "${root}ignition.firstboot"

    set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"
fi
`

const greenboot = `
# greenboot support, aka boot counter and boot success reporting
insmod increment
# Check if boot_counter exists and boot_success=0 to activate this behaviour.
if [ -n "${boot_counter}" -a "${boot_success}" = "0" ]; then
  # if countdown has ended, choose to boot rollback deployment,
  # i.e. default=1 on OSTree-based systems.
  if  [ "${boot_counter}" = "0" -o "${boot_counter}" = "-1" ]; then
    set default=1
    set boot_counter=-1
  # otherwise decrement boot_counter
  else
    decrement boot_counter
  fi
  save_env boot_counter
fi

# Reset boot_success for current boot
set boot_success=0
save_env boot_success
`

// substitute replaces ${name} for the names in vars and leaves every
// other ${...} alone, as Python's string.Template.safe_substitute does
// for osbuild's template (GRUB's own ${root} etc. stay).
func substitute(tmpl string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		name := tmpl[i+2 : i+j]
		b.WriteString(tmpl[:i])
		if v, ok := vars[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[i : i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
}

// Config renders grub.cfg. Call Validate first.
func (g *Grub) Config() (string, error) {
	var features []string
	if g.Ignition {
		features = append(features, substitute(ignitionTemplate, map[string]string{"root": g.home()}))
	}
	if g.Greenboot {
		features = append(features, greenboot)
	}
	vars := map[string]string{
		"timeout":  strconv.Itoa(g.Timeout),
		"search":   g.grubfs().search(),
		"features": strings.Join(features, "\n"),
	}
	if g.CompatVersion >= 2 {
		vars["serial"], vars["terminal_input"], vars["terminal_output"] = "", "", ""
	}
	if g.Serial != "" {
		vars["serial"] = "\n" + g.Serial
	}
	if len(g.TerminalInput) > 0 {
		vars["terminal_input"] = "\nterminal_input " + strings.Join(g.TerminalInput, " ")
	}
	if len(g.TerminalOutput) > 0 {
		vars["terminal_output"] = "\nterminal_output " + strings.Join(g.TerminalOutput, " ")
	}
	if g.BLS {
		vars["entries"] = "blscfg"
	} else {
		e, err := g.menuEntries()
		if err != nil {
			return "", err
		}
		vars["entries"] = e
	}
	return substitute(grubCfgTemplate, vars), nil
}

// menuEntries writes one menuentry per kernel, newest first, for a GRUB
// without blscfg. Its id is the kernel version, which saved_entry and
// grub-reboot name.
func (g *Grub) menuEntries() (string, error) {
	if len(g.Kernels) == 0 {
		return "", errors.New("no kernel in /boot (vmlinuz-*): grub.cfg would have no entry to boot")
	}
	opts, err := SplitCmdline(g.KernelOpts)
	if err != nil {
		return "", err
	}
	args := []string{"root=" + g.Root.KernelArg()}
	args = append(args, opts...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = GrubQuote(a)
	}
	title := g.Title
	if title == "" {
		title = "Linux"
	}
	var b strings.Builder
	for _, k := range g.Kernels {
		if !ValidEntry(k.Version) {
			return "", fmt.Errorf("kernel %q: %w: not a version kiln puts in grub.cfg", k.Version, ErrValue)
		}
		fmt.Fprintf(&b, "menuentry %s --id %s {\n", GrubQuote(title+", with Linux "+k.Version), GrubQuote(k.Version))
		b.WriteString("\tload_video\n\tinsmod gzio\n")
		fmt.Fprintf(&b, "\tlinux %s %s\n", GrubQuote(k.Linux), strings.Join(quoted, " "))
		if k.Initrd != "" {
			fmt.Fprintf(&b, "\tinitrd %s\n", GrubQuote(k.Initrd))
		}
		b.WriteString("}\n")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// Redirect renders the grub.cfg osbuild puts in the ESP's EFI/<vendor>
// for hybrid or unified boot: it finds the main grub.cfg by file and
// loads it, so that one grub.cfg and one grubenv serve BIOS and UEFI.
func (g *Grub) Redirect() string {
	p := g.home() + g.Dir
	return "\nsearch --no-floppy --set prefix --file " + p + "/grub.cfg\nset prefix=($prefix)" + p + "\nconfigfile $prefix/grub.cfg\n"
}

// Defaults renders /etc/default/grub as osbuild writes it; the values in
// double quotes passed Validate (no quote, $, backslash or backtick), as
// grub-mkconfig sources this file as shell.
func (g *Grub) Defaults() string {
	var b strings.Builder
	fmt.Fprintf(&b, "GRUB_CMDLINE_LINUX=%s\n", shellQuote(g.KernelOpts))
	fmt.Fprintf(&b, "GRUB_TIMEOUT=%d\n", g.Timeout)
	if g.BLS {
		b.WriteString("GRUB_ENABLE_BLSCFG=true\n")
	}
	if g.DisableRecovery != nil {
		fmt.Fprintf(&b, "GRUB_DISABLE_RECOVERY=%t\n", *g.DisableRecovery)
	}
	if g.DisableSubmenu != nil {
		fmt.Fprintf(&b, "GRUB_DISABLE_SUBMENU=%t\n", *g.DisableSubmenu)
	}
	if g.Distributor != "" {
		fmt.Fprintf(&b, "GRUB_DISTRIBUTOR=\"%s\"\n", g.Distributor)
	}
	if g.Serial != "" {
		fmt.Fprintf(&b, "GRUB_SERIAL_COMMAND=\"%s\"\n", g.Serial)
	}
	for _, t := range []struct {
		k string
		v []string
	}{{"GRUB_TERMINAL", g.Terminal}, {"GRUB_TERMINAL_INPUT", g.TerminalInput}, {"GRUB_TERMINAL_OUTPUT", g.TerminalOutput}} {
		if len(t.v) > 0 {
			fmt.Fprintf(&b, "%s=\"%s\"\n", t.k, strings.Join(t.v, " "))
		}
	}
	if g.TimeoutStyle != "" {
		fmt.Fprintf(&b, "GRUB_TIMEOUT_STYLE=%s\n", g.TimeoutStyle)
	}
	if g.Default != "" {
		fmt.Fprintf(&b, "GRUB_DEFAULT=%s\n", g.Default)
	}
	return b.String()
}

// shellQuote quotes s for /etc/default/grub, which grub-mkconfig sources:
// in double quotes as osbuild writes it when that is literal, else in
// single quotes, where sh expands nothing.
func shellQuote(s string) string {
	if !strings.ContainsAny(s, "\"$`\\!") {
		return `"` + s + `"`
	}
	return GrubQuote(s)
}
