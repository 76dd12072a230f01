//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/bootcfg"
)

type systemdBootOptions struct {
	RootFS       *fsSpec `json:"rootfs"`
	KernelOpts   string  `json:"kernel_opts"`
	Location     string  `json:"location"`
	SeparateBoot bool    `json:"separate_boot"`
	Title        string  `json:"title"`
	Install      bool    `json:"install"`
	Loader       *struct {
		Default     string `json:"default"`
		Timeout     *int   `json:"timeout"`
		ConsoleMode string `json:"console_mode"`
		Editor      *bool  `json:"editor"`
	} `json:"loader"`
}

var entryTokenRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// kiln.systemd-boot writes Boot Loader Specification Type #1 entries for
// the tree's kernels, as kernel-install's 90-loaderentry does, and
// systemd-boot's loader.conf. With location "esp" (systemd-boot) the
// kernels and initramfs images are copied into the ESP (/boot/efi, the
// layout kernel-install uses: /<token>/<version>/linux) and the entries
// go to /boot/efi/loader/entries; with "boot" (GRUB's blscfg, Fedora)
// they stay in /boot and the entries go to /boot/loader/entries.
// osbuild has no such stage: there kernel-install writes the entries when
// the kernel package is installed.
func init() {
	sdk.Register("kiln.systemd-boot", func(o systemdBootOptions) error {
		if o.RootFS == nil {
			return errors.New("option \"rootfs\" is required")
		}
		root := bootcfg.FS{UUID: o.RootFS.UUID, Label: o.RootFS.Label}
		if err := root.Validate(); err != nil {
			return fmt.Errorf("option \"rootfs\": %w", err)
		}
		words, err := bootcfg.SplitCmdline(o.KernelOpts)
		if err != nil {
			return fmt.Errorf("option \"kernel_opts\": %w", err)
		}
		cmdline := bootcfg.JoinCmdline(append([]string{"root=" + root.KernelArg()}, words...))
		if o.Location == "" {
			o.Location = "esp"
		}
		if o.Location != "esp" && o.Location != "boot" {
			return fmt.Errorf("option \"location\": %q: want esp or boot", o.Location)
		}
		title := o.Title
		if title == "" {
			title = osReleaseValue("PRETTY_NAME", "Linux")
		}
		if strings.ContainsFunc(title, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("option \"title\": %q has a control character", title)
		}
		machineID, token, err := entryToken()
		if err != nil {
			return err
		}
		names, err := dirNames("/boot")
		if err != nil {
			return fmt.Errorf("listing the kernels in /boot: %w", err)
		}
		kernels := bootcfg.Kernels("/boot", names)
		if len(kernels) == 0 {
			return errors.New("no kernel in /boot (vmlinuz-*)")
		}
		base := "/boot"
		if o.Location == "esp" {
			base = "/boot/efi"
		}
		if err := mkdirAll(base+"/loader/entries", 0o755, 0, 0); err != nil {
			return err
		}
		for i, k := range kernels {
			e := bootcfg.Entry{Title: title, Version: k.Version, MachineID: machineID, Options: cmdline,
				SortKey: osReleaseValue("ID", "")}
			if !entryTokenRE.MatchString(e.SortKey) {
				e.SortKey = ""
			}
			switch o.Location {
			case "esp":
				// kernel-install's layout: the ESP holds its own copies.
				dir := "/" + token + "/" + k.Version
				if err := mkdirAll("/boot/efi"+dir, 0o755, 0, 0); err != nil {
					return err
				}
				if err := copyTreeFile(k.Linux, "/boot/efi"+dir+"/linux"); err != nil {
					return fmt.Errorf("kernel %s: %w", k.Version, err)
				}
				e.Linux = dir + "/linux"
				if k.Initrd != "" {
					if err := copyTreeFile(k.Initrd, "/boot/efi"+dir+"/initrd"); err != nil {
						return fmt.Errorf("kernel %s: %w", k.Version, err)
					}
					e.Initrd = dir + "/initrd"
				}
			case "boot":
				e.Linux, e.Initrd = k.Linux, k.Initrd
				if o.SeparateBoot {
					e.Linux = strings.TrimPrefix(e.Linux, "/boot")
					e.Initrd = strings.TrimPrefix(e.Initrd, "/boot")
				}
			}
			text, err := e.Render()
			if err != nil {
				return fmt.Errorf("kernel %d: %w", i, err)
			}
			name := e.Name()
			if machineID == "" {
				name = token + "-" + k.Version + ".conf"
			}
			if err := writeConfig(base+"/loader/entries/"+name, []byte(text), 0o644); err != nil {
				return err
			}
		}
		if o.Loader != nil {
			timeout := -1
			if o.Loader.Timeout != nil {
				timeout = *o.Loader.Timeout
			}
			editor := ""
			if o.Loader.Editor != nil {
				editor = map[bool]string{true: "yes", false: "no"}[*o.Loader.Editor]
			}
			conf, err := bootcfg.LoaderConf(o.Loader.Default, timeout, o.Loader.ConsoleMode, editor)
			if err != nil {
				return fmt.Errorf("option \"loader\": %w", err)
			}
			if err := writeConfig(base+"/loader/loader.conf", []byte(conf), 0o644); err != nil {
				return err
			}
		}
		if o.Install {
			const src = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
			if err := mkdirAll("/boot/efi/EFI/BOOT", 0o755, 0, 0); err != nil {
				return err
			}
			if err := mkdirAll("/boot/efi/EFI/systemd", 0o755, 0, 0); err != nil {
				return err
			}
			for _, dst := range []string{"/boot/efi/EFI/BOOT/BOOTX64.EFI", "/boot/efi/EFI/systemd/systemd-bootx64.efi"} {
				if err := copyTreeFile(src, dst); err != nil {
					return fmt.Errorf("option \"install\": the tree's systemd-boot (package systemd-boot-efi): %w", err)
				}
			}
		}
		return nil
	})
}

// entryToken is kernel-install's: the machine id when /etc/machine-id
// holds one, else os-release's ID, else "linux". A machine id also goes
// into the entries (machine-id key).
func entryToken() (machineID, token string, err error) {
	text, ok, err := readOptional("/etc/machine-id")
	if err != nil {
		return "", "", err
	}
	if id := strings.TrimSpace(text); ok && bootcfg.ValidMachineID(id) {
		return id, id, nil
	}
	if id := osReleaseValue("ID", ""); entryTokenRE.MatchString(id) {
		return "", id, nil
	}
	return "", "linux", nil
}

// osReleaseValue is key's value in the tree's os-release, unquoted, or def.
func osReleaseValue(key, def string) string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		text, ok, err := readOptional(p)
		if err != nil || !ok {
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, key+"="); ok {
				if v = strings.Trim(v, `"'`); v != "" {
					return v
				}
			}
		}
		return def
	}
	return def
}
