//go:build wasip1

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/initramfs"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/kmod"
)

type initramfsOptions struct {
	Kernel      string   `json:"kernel"`
	Modules     []string `json:"modules"`
	Compression string   `json:"compression"`
	Busybox     string   `json:"busybox"`
	Output      string   `json:"output"`
	RootWait    int      `json:"root_wait"`
}

// defaultInitramfsModules is what a VM's root on a virtio or SCSI disk
// with ext4 needs from Debian 12's kernel, where all of them are modules.
var defaultInitramfsModules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4"}

var kernelVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// kiln.initramfs builds an initramfs for each kernel of the tree without
// running initramfs-tools or dracut: the root device's modules with their
// dependencies (modules.dep, softdeps), the tree's busybox with the
// shared libraries it needs, and kiln's /init. docs/boot.md says what is
// in it and what it does.
func init() {
	sdk.Register("kiln.initramfs", func(o initramfsOptions) error {
		if o.Compression == "" {
			o.Compression = string(initramfs.Gzip)
		}
		if o.Compression != string(initramfs.Gzip) && o.Compression != string(initramfs.None) {
			return fmt.Errorf("option \"compression\": %q: want gzip or none", o.Compression)
		}
		if o.Modules == nil {
			o.Modules = defaultInitramfsModules
		}
		for i, m := range o.Modules {
			if !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(m) {
				return fmt.Errorf("option \"modules[%d]\": %q is not a module name", i, m)
			}
		}
		if o.RootWait == 0 {
			o.RootWait = 30
		}
		if o.RootWait < 1 || o.RootWait > 600 {
			return fmt.Errorf("option \"root_wait\": %d: want 1 to 600 seconds", o.RootWait)
		}
		kernels, err := initramfsKernels(o.Kernel)
		if err != nil {
			return err
		}
		if o.Output != "" && len(kernels) != 1 {
			return fmt.Errorf("option \"output\": names one file but the tree has %d kernels: name one with option \"kernel\"", len(kernels))
		}
		bb, err := initramfsBusybox(o.Busybox)
		if err != nil {
			return err
		}
		for _, kver := range kernels {
			out := "/boot/initrd.img-" + kver
			if o.Output != "" {
				if out, err = optPath("output", o.Output); err != nil {
					return err
				}
			}
			if err := buildInitramfs(kver, o, bb, out); err != nil {
				return fmt.Errorf("kernel %s: %w", kver, err)
			}
		}
		return nil
	})
}

// initramfsKernels is the kernel named, or each one with both
// /lib/modules/VERSION and /boot/vmlinuz-VERSION.
func initramfsKernels(kernel string) ([]string, error) {
	if kernel != "" {
		if !kernelVersionRE.MatchString(kernel) {
			return nil, fmt.Errorf("option \"kernel\": %q is not a kernel version", kernel)
		}
		if _, err := os.Stat("/lib/modules/" + kernel + "/modules.dep"); err != nil {
			return nil, fmt.Errorf("option \"kernel\": %w", err)
		}
		return []string{kernel}, nil
	}
	names, err := dirNames("/lib/modules")
	if err != nil {
		return nil, fmt.Errorf("the tree has no kernel modules: %w", err)
	}
	var ks []string
	for _, n := range names {
		if !kernelVersionRE.MatchString(n) {
			continue
		}
		if ok, _ := exists("/boot/vmlinuz-" + n); ok {
			ks = append(ks, n)
		}
	}
	if len(ks) == 0 {
		return nil, errors.New("no kernel in the tree: no /boot/vmlinuz-VERSION with /lib/modules/VERSION")
	}
	return ks, nil
}

type busyboxFiles struct {
	files map[string][]byte // archive path -> content: busybox, its loader and libraries
	note  string
}

// initramfsBusybox reads the tree's busybox and, when it is dynamically
// linked (Debian's busybox package; busybox-static is not), its
// interpreter and the libraries its DT_NEEDED entries name, transitively.
func initramfsBusybox(opt string) (*busyboxFiles, error) {
	cands := []string{"/usr/bin/busybox", "/bin/busybox"}
	if opt != "" {
		p, err := optPath("busybox", opt)
		if err != nil {
			return nil, err
		}
		cands = []string{p}
	}
	var data []byte
	var src string
	for _, c := range cands {
		b, err := os.ReadFile(c)
		if err == nil {
			data, src = b, c
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("option \"busybox\": %w", err)
		}
	}
	if data == nil {
		return nil, fmt.Errorf("option \"busybox\": no busybox in the tree at %s (install busybox or busybox-static)", strings.Join(cands, " or "))
	}
	info, err := initramfs.ReadELF(data)
	if err != nil {
		return nil, fmt.Errorf("option \"busybox\": %s: %w", src, err)
	}
	bb := &busyboxFiles{files: map[string][]byte{initramfs.BusyboxPath: data}}
	if info.Interp == "" {
		bb.note = src + " is static"
		return bb, nil
	}
	interp, err := treepathClean(info.Interp)
	if err != nil {
		return nil, fmt.Errorf("%s: interpreter %q: %w", src, info.Interp, err)
	}
	if bb.files[interp], err = os.ReadFile(interp); err != nil {
		return nil, fmt.Errorf("%s: its interpreter: %w", src, err)
	}
	queue := append([]string(nil), info.Needed...)
	found := map[string]bool{}
	dirs := info.LibraryDirs()
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if found[name] {
			continue
		}
		if name == "" || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("%s: needed library %q is not a file name", src, name)
		}
		found[name] = true
		if name == path.Base(interp) {
			continue
		}
		var lib []byte
		var at string
		for _, d := range dirs {
			if b, err := os.ReadFile(d + "/" + name); err == nil {
				lib, at = b, d+"/"+name
				break
			}
		}
		if lib == nil {
			return nil, fmt.Errorf("%s needs %s, which is in none of %s", src, name, strings.Join(dirs, " "))
		}
		if at == interp || path.Base(at) == path.Base(interp) {
			// libc names the loader too; it is in the archive already.
			continue
		}
		bb.files[at] = lib
		li, err := initramfs.ReadELF(lib)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		queue = append(queue, li.Needed...)
	}
	bb.note = fmt.Sprintf("%s is dynamically linked: with %d files (its loader and libraries)", src, len(bb.files)-1)
	return bb, nil
}

func treepathClean(p string) (string, error) {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return "", errors.New("not a clean absolute path")
	}
	return p, nil
}

func buildInitramfs(kver string, o initramfsOptions, bb *busyboxFiles, out string) error {
	dir := "/lib/modules/" + kver
	x := kmod.NewIndex()
	depmodRan, err := exists(dir + "/modules.dep")
	if err != nil {
		return err
	}
	if !depmodRan {
		// depmod runs in linux-image's postinst; kiln.deb with
		// "configure": "first-boot" leaves that to the first boot, so
		// the index is read from the modules themselves, as depmod does.
		if err := indexFromModinfo(x, dir); err != nil {
			return err
		}
		fmt.Printf("kiln.initramfs: %s has no modules.dep (depmod has not run): dependencies read from %d modules' .modinfo\n", dir, len(x.Modules))
	}
	for _, f := range []struct {
		name     string
		required bool
		read     func(io.Reader) error
	}{
		{"modules.dep", true, x.ReadDep},
		{"modules.builtin", false, x.ReadBuiltin},
		{"modules.softdep", false, x.ReadSoftdep},
		{"modules.alias", false, x.ReadAlias},
	} {
		if !depmodRan && f.name != "modules.builtin" {
			continue
		}
		b, err := os.ReadFile(dir + "/" + f.name)
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		if err != nil {
			return err
		}
		if err := f.read(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("%s/%w", dir, err)
		}
	}
	res, err := x.Resolve(o.Modules)
	if err != nil {
		return fmt.Errorf("option \"modules\": %w", err)
	}
	a := initramfs.New()
	var order []string
	for _, m := range res.Load {
		data, err := os.ReadFile(dir + "/" + m.Path)
		if err != nil {
			return err
		}
		if data, err = initramfs.DecompressModule(m.Path, data); err != nil {
			return err
		}
		p := dir + "/" + initramfs.PlainModulePath(m.Path)
		if err := a.File(p, data, 0o644); err != nil {
			return err
		}
		order = append(order, p)
	}
	if err := a.File(dir+"/modules.dep", []byte(kmod.Dep(res.Load, initramfs.PlainModulePath)), 0o644); err != nil {
		return err
	}
	if b, err := os.ReadFile(dir + "/modules.builtin"); err == nil {
		if err := a.File(dir+"/modules.builtin", b, 0o644); err != nil {
			return err
		}
	}
	for p, data := range bb.files {
		if err := a.File(p, data, 0o755); err != nil {
			return err
		}
	}
	if err := a.Symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "root", "tmp"} {
		if err := a.Dir(d, 0o755); err != nil {
			return err
		}
	}
	script, err := initramfs.Init(order, o.RootWait)
	if err != nil {
		return err
	}
	if err := a.File("init", []byte(script), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	// The stage's clock is frozen at SOURCE_DATE_EPOCH (docs/stage-abi.md).
	if err := a.Write(&buf, initramfs.Compression(o.Compression), time.Now().Truncate(time.Second)); err != nil {
		return err
	}
	if err := mkdirAll(path.Dir(out), 0o755, 0, 0); err != nil {
		return err
	}
	// A new file, not the old one truncated: the old one may be a hard
	// link shared with another path.
	if err := removeInTheWay(out); err != nil {
		return err
	}
	if err := putFile(out, buf.Bytes(), 0o644, 0, 0); err != nil {
		return err
	}
	fmt.Printf("kiln.initramfs: %s: %d modules (%s), built in: %s; softdeps not in this kernel: %s; %s; %d bytes %s\n",
		out, len(res.Load), strings.Join(moduleNames(res.Load), " "), listOrNone(res.Builtin), listOrNone(res.Missing), bb.note, buf.Len(), o.Compression)
	return nil
}

func moduleNames(ms []*kmod.Module) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return s
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// indexFromModinfo adds every module under dir (kernel/, updates/,
// extra/...) to x from its .modinfo section.
func indexFromModinfo(x *kmod.Index, dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 || d.IsDir() {
			// A symlinked directory (Debian's build, source) is not walked.
			return nil
		}
		rel := strings.TrimPrefix(p, dir+"/")
		if kmod.Name(rel) == "" || !isModuleFile(rel) {
			return nil
		}
		var r io.ReaderAt
		if strings.HasSuffix(rel, ".ko") {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		} else {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if data, err = initramfs.DecompressModule(rel, data); err != nil {
				return err
			}
			r = bytes.NewReader(data)
		}
		info, err := kmod.Modinfo(r)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return x.AddModinfo(rel, info)
	})
	if err != nil {
		return fmt.Errorf("reading modules' .modinfo: %w", err)
	}
	return x.ResolveModinfoDeps()
}

func isModuleFile(p string) bool {
	for _, s := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}
