//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/initramfs"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/kmod"
)

type depmodOptions struct {
	Kernels []string `json:"kernels"`
}

// depmodKernelRE is a kernel version as the schema has it: depmod's own
// check (it starts with NUMBER.NUMBER), no '/' and no "..", so that it
// names a directory directly under /lib/modules.
var depmodKernelRE = regexp.MustCompile(`^[0-9]+\.[0-9]+([._+-]?[A-Za-z0-9]+)*\+?$`)

// kiln.depmod writes what depmod -a (kmod 30, Debian 12) writes for each
// kernel under /lib/modules, byte for byte: linux-image's postinst runs
// depmod, and where kiln.deb defers the postinst to the first boot the
// image would otherwise have no module index until then. docs/stages.md
// says what it reads and where it differs from depmod.
func init() {
	sdk.Register("kiln.depmod", func(o depmodOptions) error {
		kernels := o.Kernels
		if kernels != nil && len(kernels) == 0 {
			return errors.New("option \"kernels\": an empty list names no kernel; leave it out for every kernel")
		}
		if kernels == nil {
			var err error
			if kernels, err = depmodKernels(); err != nil {
				return err
			}
		}
		for i, k := range kernels {
			if len(k) > 128 || !depmodKernelRE.MatchString(k) {
				return fmt.Errorf("option \"kernels[%d]\": %q is not a kernel version", i, k)
			}
			st, err := os.Stat("/lib/modules/" + k)
			if err != nil {
				return fmt.Errorf("option \"kernels[%d]\": %w", i, err)
			}
			if !st.IsDir() {
				return fmt.Errorf("option \"kernels[%d]\": /lib/modules/%s is not a directory", i, k)
			}
		}
		files, err := depmodConfigFiles()
		if err != nil {
			return err
		}
		for _, k := range kernels {
			if err := runDepmod(k, files); err != nil {
				return fmt.Errorf("kernel %s: %w", k, err)
			}
		}
		return nil
	})
}

// depmodKernels is every /lib/modules directory named like a kernel
// version.
func depmodKernels() ([]string, error) {
	ents, err := os.ReadDir("/lib/modules")
	if err != nil {
		return nil, fmt.Errorf("the tree has no kernel modules: %w", err)
	}
	var ks []string
	for _, e := range ents {
		if !depmodKernelRE.MatchString(e.Name()) {
			continue
		}
		if st, err := os.Stat("/lib/modules/" + e.Name()); err == nil && st.IsDir() {
			ks = append(ks, e.Name())
		}
	}
	if len(ks) == 0 {
		return nil, errors.New("no kernel in the tree: no /lib/modules/VERSION directory")
	}
	return ks, nil
}

// depmodConfigFiles reads the tree's depmod.d files in the order depmod
// reads them.
func depmodConfigFiles() ([]kmod.ConfigFile, error) {
	names := map[string][]string{}
	for _, d := range kmod.DepmodConfigDirs {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				// depmod skips directories with a message.
				warnf("%s/%s: a directory in depmod.d (skipped, as depmod does)", d, e.Name())
				continue
			}
			names[d] = append(names[d], e.Name())
		}
	}
	var files []kmod.ConfigFile
	for _, p := range kmod.ConfigFiles(kmod.DepmodConfigDirs, names) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, kmod.ConfigFile{Path: p, Data: b})
	}
	return files, nil
}

func runDepmod(kver string, files []kmod.ConfigFile) error {
	start := time.Now()
	conf, err := kmod.ParseDepmodConfig(files, kver)
	if err != nil {
		return err
	}
	res, err := kmod.RunDepmod(os.DirFS("/"), kmod.ModuleDir(kver), conf, func(kind string, data []byte) ([]byte, error) {
		return initramfs.DecompressModule("module."+kind, data)
	})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		warnf("%s", w)
	}
	// The stage's clock is frozen at SOURCE_DATE_EPOCH (docs/stage-abi.md).
	now := time.Now()
	dir := "/lib/modules/" + kver
	for _, name := range kmod.DepmodFiles {
		p := dir + "/" + name
		// A new file, as depmod's rename makes one: the old one may be
		// a hard link shared with another path.
		if err := removeInTheWay(p); err != nil {
			return err
		}
		if err := putFile(p, res.Files[name], 0o644, 0, 0); err != nil {
			return err
		}
		if err := sdk.Utimens(p, now, now); err != nil {
			return err
		}
	}
	fmt.Printf("kiln.depmod: %s: %d modules, %d depmod.d files (%s); wrote %s (%d bytes of modules.dep); %v\n",
		dir, res.Modules, len(files), listOrNone(configPaths(files)), strings.Join(kmod.DepmodFiles, " "),
		len(res.Files["modules.dep"]), time.Since(start).Round(time.Millisecond))
	return nil
}

func configPaths(files []kmod.ConfigFile) []string {
	var s []string
	for _, f := range files {
		s = append(s, f.Path)
	}
	return s
}
