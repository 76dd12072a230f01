package assembler

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// vfat filesystems (an EFI system partition) are made with dosfstools'
// mkfs.vfat and filled with mtools (mmd, mcopy), as osbuild makes them
// (mkfs.vfat -i) and mkosi fills them. go-diskfs's FAT32 writer was the
// other choice: in its reproducible mode the volume serial is always 0 and
// cannot be set, it makes FAT32 only (osbuild's mkfs.vfat picks FAT12/16/32
// by size), and its layout would differ from what osbuild's disks hold.
//
// Reproducibility: --invariant fixes what mkfs.vfat would take from the
// clock or a random source, -i sets the serial from the filesystem's uuid;
// mtools stamps every entry with SOURCE_DATE_EPOCH (TZ=UTC: FAT times are
// local time), and kiln creates directories and copies files one
// directory at a time in byte order of their names, so the directory
// entries and the clusters come in the same order on every build, whatever
// order the tree's filesystem lists them in.
const (
	// vfatSerialPattern: the volume serial as blkid shows it (osbuild's
	// uuid for a vfat filesystem, such as 7B77-95E7), or its 8 hex digits.
	vfatSerialPattern = `^[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}$`
	// vfatLabelPattern: a FAT label holds 11 bytes; FAT forbids
	// ".+,;=[]" and friends in it.
	vfatLabelPattern = `^[A-Za-z0-9_][A-Za-z0-9 _-]{0,10}$`
	// vfatNamePattern: a name kiln puts on a FAT filesystem. FAT forbids
	// control characters and "*?<>|:\/; mtools reads * ? [ ] as wildcards
	// and a leading '-' would be an option; a trailing dot or space is
	// dropped by FAT, so two tree names could become one.
	vfatNamePattern = `^[A-Za-z0-9_.+~@#$%&!(){}^']([A-Za-z0-9_.+~@#$%&!(){}^' -]*[A-Za-z0-9_+~@#$%&!(){}^'-])?$`
)

var (
	vfatSerialRE = regexp.MustCompile(vfatSerialPattern)
	vfatLabelRE  = regexp.MustCompile(vfatLabelPattern)
	vfatNameRE   = regexp.MustCompile(vfatNamePattern)
)

// vfatSpec is one vfat filesystem to make.
type vfatSpec struct {
	Assembler string
	Option    string   // the partition's filesystem option, for errors
	Dir       string   // the tree under the mountpoint (may be missing)
	Exclude   []string // paths below Dir that other partitions hold
	Path      string   // the image file to write
	Size      int64    // bytes
	Serial    string   // vfatSerialPattern
	Label     string   // vfatLabelPattern or ""
	Epoch     int64
}

// vfatDir is what one directory of the tree puts on the filesystem.
type vfatDir struct {
	Dir   string   // "" for the root, else "EFI/BOOT"
	Files []string // host paths of its regular files, in name order
}

// makeVFAT makes a vfat filesystem image from spec.Dir.
func makeVFAT(ctx context.Context, spec vfatSpec) error {
	dirs, err := vfatTree(ctx, spec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(spec.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(spec.Size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	serial := strings.ReplaceAll(spec.Serial, "-", "")
	// --invariant first: it would otherwise reset the serial -i sets.
	args := []string{"--invariant", "-i", serial}
	if spec.Label != "" {
		args = append(args, "-n", spec.Label)
	}
	if _, err := runTool(ctx, nil, "mkfs.vfat", append(args, "--", spec.Path)...); err != nil {
		return toolFailure(ctx, spec.Assembler, err)
	}
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(max(spec.Epoch, 315532800), 10), "TZ=UTC"}
	var mkdirs []string
	for _, d := range dirs {
		if d.Dir != "" {
			mkdirs = append(mkdirs, "::/"+d.Dir)
		}
	}
	for chunk := range chunks(mkdirs, 256) {
		if _, err := runTool(ctx, env, "mmd", append([]string{"-i", spec.Path, "--"}, chunk...)...); err != nil {
			return toolFailure(ctx, spec.Assembler, err)
		}
	}
	for _, d := range dirs {
		for chunk := range chunks(d.Files, 256) {
			if err := ctx.Err(); err != nil {
				return err
			}
			// -Q: stop at the first error; "--": the host paths are
			// absolute anyway. The target is the directory, so each file
			// keeps its name.
			args := append([]string{"-i", spec.Path, "-Q", "--"}, chunk...)
			target := "::/"
			if d.Dir != "" {
				target += d.Dir + "/"
			}
			if _, err := runTool(ctx, env, "mcopy", append(args, target)...); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if strings.Contains(err.Error(), "Disk full") {
					return errOption(spec.Assembler, spec.Option, "the files under the mountpoint do not fit in %d bytes: %v", spec.Size, err)
				}
				return toolFailure(ctx, spec.Assembler, err)
			}
		}
	}
	return nil
}

// toolFailure is failure, unless the tool was killed because ctx ended:
// then the error is ctx's, not the input's fault.
func toolFailure(ctx context.Context, assembler string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return failure(assembler, err)
}

// chunks yields s in pieces of at most n, keeping argv short.
func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// vfatTree walks spec.Dir in name order and returns its directories,
// parents first, refusing what FAT cannot hold: symlinks, devices, fifos
// and sockets, names FAT or mtools would change, and two names that
// differ only in case (FAT would hold one of them). The tree is a
// read-only bind mount and every component is checked with Lstat, so
// mtools, which opens the paths by name, reads only the tree's files.
func vfatTree(ctx context.Context, spec vfatSpec) ([]vfatDir, error) {
	if _, err := os.Lstat(spec.Dir); os.IsNotExist(err) {
		return nil, nil
	}
	skip := map[string]bool{}
	for _, e := range spec.Exclude {
		skip[e] = true
	}
	// What the tree holds that FAT cannot is the mountpoint's fault.
	opt := spec.Option + ".mountpoint"
	var dirs []vfatDir
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		host := filepath.Join(spec.Dir, rel)
		entries, err := os.ReadDir(host)
		if err != nil {
			return err
		}
		d := vfatDir{Dir: rel}
		var sub []string
		seen := map[string]string{}
		for _, e := range entries {
			name, p := e.Name(), path.Join(rel, e.Name())
			if skip[p] {
				// Another partition's mountpoint: an empty directory here.
				sub = append(sub, p)
				continue
			}
			if !vfatNameRE.MatchString(name) || len(name) > 255 {
				return errOption(spec.Assembler, opt, "%s: a vfat filesystem cannot hold the name %q (%s)", p, name, vfatNamePattern)
			}
			if other, ok := seen[strings.ToLower(name)]; ok {
				return errOption(spec.Assembler, opt, "%s and %s differ only in case, which a vfat filesystem cannot hold apart", path.Join(rel, other), p)
			}
			seen[strings.ToLower(name)] = name
			fi, err := os.Lstat(filepath.Join(host, name))
			if err != nil {
				return err
			}
			switch {
			case fi.IsDir():
				sub = append(sub, p)
			case fi.Mode().IsRegular():
				d.Files = append(d.Files, filepath.Join(host, name))
			default:
				return errOption(spec.Assembler, opt, "%s is a %v: a vfat filesystem holds directories and regular files only", p, fi.Mode().Type())
			}
		}
		if rel != "" || len(d.Files) > 0 {
			dirs = append(dirs, d)
		}
		for _, s := range sub {
			if skip[s] {
				dirs = append(dirs, vfatDir{Dir: s})
				continue
			}
			if err := walk(s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return dirs, nil
}
