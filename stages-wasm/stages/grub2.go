//go:build wasip1

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/bootcfg"
)

type fsSpec struct {
	UUID  string `json:"uuid"`
	Label string `json:"label"`
}

type grub2Options struct {
	CompatVersion int             `json:"compat_version"`
	RootFS        *fsSpec         `json:"rootfs"`
	BootFS        *fsSpec         `json:"bootfs"`
	RootFSUUID    string          `json:"root_fs_uuid"`
	BootFSUUID    string          `json:"boot_fs_uuid"`
	KernelOpts    string          `json:"kernel_opts"`
	Legacy        json.RawMessage `json:"legacy"`
	UEFI          *struct {
		Vendor    string `json:"vendor"`
		EFISrcDir string `json:"efi_src_dir"`
		Install   bool   `json:"install"`
		Unified   bool   `json:"unified"`
		EFIBinary string `json:"efi_binary"`
	} `json:"uefi"`
	SavedEntry    string `json:"saved_entry"`
	WriteDefaults *bool  `json:"write_defaults"`
	WriteCmdline  *bool  `json:"write_cmdline"`
	Ignition      bool   `json:"ignition"`
	Greenboot     bool   `json:"greenboot"`
	GrubDir       string `json:"grub_dir"`
	Config        struct {
		Default         string   `json:"default"`
		DisableRecovery *bool    `json:"disable_recovery"`
		DisableSubmenu  *bool    `json:"disable_submenu"`
		Distributor     string   `json:"distributor"`
		Terminal        []string `json:"terminal"`
		TerminalInput   []string `json:"terminal_input"`
		TerminalOutput  []string `json:"terminal_output"`
		Timeout         int      `json:"timeout"`
		TimeoutStyle    string   `json:"timeout_style"`
		Serial          string   `json:"serial"`
	} `json:"config"`
}

// org.osbuild.grub2 writes GRUB's configuration as osbuild's stage does
// (grub.cfg, grubenv, /etc/default/grub, the EFI redirect config, the
// i386-pc modules and font for BIOS boot), taking the GRUB files from the
// tree, not from a build host. Where the tree's GRUB has no blscfg module
// (Debian's) grub.cfg lists the kernels in /boot itself. docs/boot.md has
// the whole story.
func init() {
	sdk.Register("org.osbuild.grub2", runGrub2)
}

func runGrub2(o grub2Options) error {
	g := bootcfg.Grub{
		KernelOpts:      o.KernelOpts,
		CompatVersion:   o.CompatVersion,
		Dir:             o.GrubDir,
		Timeout:         o.Config.Timeout,
		Serial:          o.Config.Serial,
		Terminal:        o.Config.Terminal,
		TerminalInput:   o.Config.TerminalInput,
		TerminalOutput:  o.Config.TerminalOutput,
		TimeoutStyle:    o.Config.TimeoutStyle,
		Default:         o.Config.Default,
		Distributor:     o.Config.Distributor,
		DisableRecovery: o.Config.DisableRecovery,
		DisableSubmenu:  o.Config.DisableSubmenu,
		Ignition:        o.Ignition,
		Greenboot:       o.Greenboot,
	}
	if g.CompatVersion == 0 {
		g.CompatVersion = 1
	}
	if g.Dir == "" {
		g.Dir = "grub2"
	}
	switch {
	case o.RootFS != nil:
		g.Root = bootcfg.FS{UUID: o.RootFS.UUID, Label: o.RootFS.Label}
	case o.RootFSUUID != "":
		g.Root = bootcfg.FS{UUID: o.RootFSUUID}
	default:
		return errors.New("option \"rootfs\" or \"root_fs_uuid\" is required")
	}
	switch {
	case o.BootFS != nil:
		g.Boot = bootcfg.FS{UUID: o.BootFS.UUID, Label: o.BootFS.Label}
	case o.BootFSUUID != "":
		g.Boot = bootcfg.FS{UUID: o.BootFSUUID}
	}
	if err := g.Validate(); err != nil {
		return err
	}
	legacy, err := legacyPlatform(o.Legacy)
	if err != nil {
		return err
	}
	if o.SavedEntry != "" && !bootcfg.ValidEntry(o.SavedEntry) {
		return fmt.Errorf("option \"saved_entry\": %q is not an entry id (A-Z a-z 0-9 . _ + : ~ -)", o.SavedEntry)
	}
	g.BLS = hasBlscfg()
	g.Title = menuTitle(o.Config.Distributor)
	if !g.BLS {
		bootDir := "/boot"
		if g.SeparateBoot() {
			bootDir = ""
		}
		names, err := dirNames("/boot")
		if err != nil {
			return fmt.Errorf("listing the kernels in /boot: %w", err)
		}
		g.Kernels = bootcfg.Kernels(bootDir, names)
	}

	if o.WriteDefaults == nil || *o.WriteDefaults {
		if err := mkdirAll("/etc/default", 0o755, 0, 0); err != nil {
			return err
		}
		if err := writeConfig("/etc/default/grub", []byte(g.Defaults()), 0o644); err != nil {
			return err
		}
	}
	grubDir := "/boot/" + g.Dir
	if err := mkdirAll(grubDir, 0o755, 0, 0); err != nil {
		return err
	}
	hybrid := o.UEFI != nil && legacy != ""
	if hybrid {
		// Fedora's grub2-efi links grubenv into the ESP; hybrid boot wants
		// the one in the GRUB directory, which both firmwares reach.
		if err := removeSymlink(grubDir + "/grubenv"); err != nil {
			return err
		}
	}
	var vars []bootcfg.Var
	if o.WriteCmdline == nil || *o.WriteCmdline {
		vars = append(vars, bootcfg.Var{Name: "kernelopts", Value: "root=" + g.Root.KernelArg() + " " + o.KernelOpts})
	}
	if o.SavedEntry != "" {
		vars = append(vars, bootcfg.Var{Name: "saved_entry", Value: o.SavedEntry})
	}
	env, err := bootcfg.Grubenv(vars)
	if err != nil {
		return fmt.Errorf("option \"kernel_opts\": %w", err)
	}
	if err := writeConfig(grubDir+"/grubenv", env, 0o644); err != nil {
		return err
	}

	cfgPath := grubDir + "/grub.cfg"
	if o.UEFI != nil {
		if err := grub2UEFI(&g, o.UEFI.Vendor, o.UEFI.EFISrcDir, o.UEFI.Install, o.UEFI.EFIBinary); err != nil {
			return err
		}
		efiCfg := "/boot/efi/EFI/" + o.UEFI.Vendor + "/grub.cfg"
		if hybrid || o.UEFI.Unified {
			if err := writeConfig(efiCfg, []byte(g.Redirect()), 0o644); err != nil {
				return err
			}
		} else {
			cfgPath = efiCfg
		}
	}
	cfg, err := g.Config()
	if err != nil {
		return err
	}
	if err := writeConfig(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if legacy != "" {
		if err := copyGrubModules(legacy, grubDir, "legacy"); err != nil {
			return err
		}
		if err := mkdirAll(grubDir+"/fonts", 0o755, 0, 0); err != nil {
			return err
		}
		if err := copyTreeFile("/usr/share/grub/unicode.pf2", grubDir+"/fonts/unicode.pf2"); err != nil {
			return fmt.Errorf("option \"legacy\": the tree's GRUB font (grub-common): %w", err)
		}
	}
	return nil
}

// legacyPlatform reads option legacy: false, true (i386-pc) or a platform.
func legacyPlatform(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		if b {
			return "i386-pc", nil
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("option \"legacy\": want a boolean or a platform: %w", err)
	}
	if s != "i386-pc" {
		return "", fmt.Errorf("option \"legacy\": platform %q: kiln installs GRUB for i386-pc only", s)
	}
	return s, nil
}

// grub2UEFI fills the ESP's directory in the tree (/boot/efi): the EFI
// binaries osbuild's install option copies, kiln's efi_binary, and the
// x86_64-efi modules a GRUB EFI image without them built in loads from
// the GRUB directory.
func grub2UEFI(g *bootcfg.Grub, vendor, srcDir string, install bool, binary string) error {
	if vendor == "" || !validName(vendor) {
		return fmt.Errorf("option \"uefi.vendor\": %q is not a directory name (A-Z a-z 0-9 . _ -)", vendor)
	}
	if err := mkdirAll("/boot/efi/EFI/"+vendor, 0o755, 0, 0); err != nil {
		return err
	}
	if install {
		if srcDir == "" {
			srcDir = "/boot/efi/EFI"
		}
		src, err := optPath("uefi.efi_src_dir", srcDir)
		if err != nil {
			return err
		}
		for _, d := range []string{"BOOT", vendor} {
			if err := copyTreeDir(src+"/"+d, "/boot/efi/EFI/"+d); err != nil {
				return fmt.Errorf("option \"uefi.install\": %w", err)
			}
		}
	}
	if binary != "" {
		src, err := optPath("uefi.efi_binary", binary)
		if err != nil {
			return err
		}
		if err := mkdirAll("/boot/efi/EFI/BOOT", 0o755, 0, 0); err != nil {
			return err
		}
		for _, dst := range []string{"/boot/efi/EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/" + vendor + "/grubx64.efi"} {
			if err := copyTreeFile(src, dst); err != nil {
				return fmt.Errorf("option \"uefi.efi_binary\": %w", err)
			}
		}
	}
	if ok, err := exists("/usr/lib/grub/x86_64-efi"); err != nil {
		return err
	} else if ok {
		return copyGrubModules("x86_64-efi", "/boot/"+g.Dir, "uefi")
	}
	return nil
}

func validName(s string) bool {
	return s != "." && s != ".." && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
	})
}

// copyGrubModules copies the tree's GRUB modules and lists for platform
// into dir/platform, as grub-install does and as osbuild copies the build
// host's; fdt.lst, an empty file, stays out as in osbuild.
func copyGrubModules(platform, dir, opt string) error {
	src := "/usr/lib/grub/" + platform
	names, err := dirNames(src)
	if err != nil {
		return fmt.Errorf("option %q: the tree's GRUB modules for %s (grub-pc-bin / grub-efi-amd64-bin): %w", opt, platform, err)
	}
	if err := mkdirAll(dir+"/"+platform, 0o755, 0, 0); err != nil {
		return err
	}
	for _, n := range names {
		if ext := path.Ext(n); (ext != ".mod" && ext != ".lst") || n == "fdt.lst" {
			continue
		}
		if err := copyTreeFile(src+"/"+n, dir+"/"+platform+"/"+n); err != nil {
			return fmt.Errorf("option %q: %w", opt, err)
		}
	}
	return nil
}

// hasBlscfg says whether the tree's GRUB has the blscfg command
// (Fedora's does, Debian 12's does not).
func hasBlscfg() bool {
	for _, p := range []string{"i386-pc", "x86_64-efi"} {
		if ok, _ := exists("/usr/lib/grub/" + p + "/blscfg.mod"); ok {
			return true
		}
	}
	return false
}

// menuTitle is what grub-mkconfig's 10_linux calls the OS: the
// distributor, else os-release's NAME, else Linux.
func menuTitle(distributor string) string {
	if distributor != "" {
		return distributor
	}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		text, ok, err := readOptional(p)
		if err != nil || !ok {
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "NAME="); ok {
				v = strings.Trim(v, `"'`)
				if v != "" && !strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 }) {
					return v
				}
			}
		}
	}
	return "Linux"
}

// dirNames lists a directory's entries, sorted.
func dirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names, nil
}

// copyTreeFile copies regular file src to dst in the tree with src's
// permission bits, owned by root. A symlink is followed (the tree is the
// sandbox's root, so it stays in the tree).
func copyTreeFile(src, dst string) error {
	st, err := statFollow(src)
	if err != nil {
		return err
	}
	if !st.Mode.IsRegular() {
		return &fs.PathError{Op: "copy", Path: src, Err: errors.New("not a regular file")}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := removeSymlink(dst); err != nil {
		return err
	}
	return putFile(dst, data, st.Mode.Perm(), 0, 0)
}

// copyTreeDir copies directory src's regular files and subdirectories
// into dst, as Python's shutil.copytree(symlinks=False) does.
func copyTreeDir(src, dst string) error {
	names, err := dirNames(src)
	if err != nil {
		return err
	}
	if err := mkdirAll(dst, 0o755, 0, 0); err != nil {
		return err
	}
	for _, n := range names {
		st, err := os.Stat(src + "/" + n)
		if err != nil {
			return err
		}
		if st.IsDir() {
			err = copyTreeDir(src+"/"+n, dst+"/"+n)
		} else {
			err = copyTreeFile(src+"/"+n, dst+"/"+n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// removeSymlink removes p when it is a symlink, so that what is written
// there lands at p and not where the link points.
func removeSymlink(p string) error {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return os.Remove(p)
	}
	return nil
}
