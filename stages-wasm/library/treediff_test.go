package library

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/treesum"
)

// A tree description is one line per path, as the golden files hold them:
//
//	/etc dir 0755 0:0
//	/etc/hostname file 0644 0:0 "kiln\n"
//	/etc/big file 0644 0:0 size=9000 sha256=ab12...
//	/etc/localtime symlink -> ../usr/share/zoneinfo/UTC
//	/home/u/.x symlink 1000:1000 -> y
//	/dev/null char 0666 0:0 1,3
//	/run/p fifo 0644 0:0
//
// Files with more than one link end in " links=N"; extended attributes
// follow as ` xattr:NAME="VALUE"`. Content longer than maxQuoted or not
// UTF-8 is shown by size and digest.
const maxQuoted = 512

// describeTree returns path -> description of every entry under root.
func describeTree(root string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		line, err := describe(p)
		if err != nil {
			return err
		}
		out[rel] = line
		return nil
	})
	return out, err
}

func describe(p string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return "", err
	}
	owner := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	mode := fmt.Sprintf("%04o", st.Mode&0o7777)
	var b strings.Builder
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		fmt.Fprintf(&b, "dir %s %s", mode, owner)
	case syscall.S_IFREG:
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "file %s %s %s", mode, owner, content(data))
		if st.Nlink > 1 {
			fmt.Fprintf(&b, " links=%d", st.Nlink)
		}
	case syscall.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if owner == "0:0" {
			fmt.Fprintf(&b, "symlink -> %s", target)
		} else {
			fmt.Fprintf(&b, "symlink %s -> %s", owner, target)
		}
	case syscall.S_IFCHR, syscall.S_IFBLK:
		kind := "char"
		if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
			kind = "block"
		}
		fmt.Fprintf(&b, "%s %s %s %d,%d", kind, mode, owner, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case syscall.S_IFIFO:
		fmt.Fprintf(&b, "fifo %s %s", mode, owner)
	default:
		fmt.Fprintf(&b, "other %o %s", st.Mode, owner)
	}
	xattrs, err := listXattrs(p)
	if err != nil {
		return "", err
	}
	for _, x := range xattrs {
		b.WriteString(" " + x)
	}
	return b.String(), nil
}

func content(data []byte) string {
	if len(data) <= maxQuoted && utf8.Valid(data) {
		return strconv.Quote(string(data))
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("size=%d sha256=%s", len(data), hex.EncodeToString(sum[:]))
}

// listXattrs returns `xattr:NAME="VALUE"` for each attribute, sorted;
// security.selinux labels the host's filesystem may add are left out.
func listXattrs(p string) ([]string, error) {
	names, err := treesum.ListXattrs(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		if name == "security.selinux" {
			continue
		}
		val, err := treesum.GetXattr(p, name)
		if err != nil {
			return nil, err
		}
		out = append(out, "xattr:"+name+"="+strconv.Quote(string(val)))
	}
	slices.Sort(out)
	return out, nil
}

// diffTrees renders the difference of two descriptions: "+ path desc" for
// added paths, "- path" for removed ones and "~ path desc" for changed
// ones, sorted by path.
func diffTrees(before, after map[string]string) string {
	var paths []string
	for p := range before {
		paths = append(paths, p)
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var b strings.Builder
	for _, p := range paths {
		old, hadOld := before[p]
		cur, hasNew := after[p]
		switch {
		case !hadOld:
			fmt.Fprintf(&b, "+ %s %s\n", p, cur)
		case !hasNew:
			fmt.Fprintf(&b, "- %s\n", p)
		case old != cur:
			fmt.Fprintf(&b, "~ %s %s\n", p, cur)
		}
	}
	return b.String()
}

// makeTree builds the tree a tree.txt describes under root (which exists).
// Parents must come before their children. File content is either quoted
// or "@NAME", the bytes of file NAME in the case directory dir.
func makeTree(root, dir, desc string) error {
	sc := bufio.NewScanner(strings.NewReader(desc))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := makeEntry(root, dir, line); err != nil {
			return fmt.Errorf("tree.txt line %d: %w", n, err)
		}
	}
	return sc.Err()
}

func makeEntry(root, dir, line string) error {
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 {
		return fmt.Errorf("want PATH TYPE ...: %q", line)
	}
	p := filepath.Join(root, f[0])
	rest := ""
	if len(f) == 3 {
		rest = f[2]
	}
	if f[1] == "symlink" {
		target, ok := strings.CutPrefix(rest, "-> ")
		if !ok {
			return fmt.Errorf("symlink wants -> TARGET: %q", line)
		}
		return os.Symlink(target, p)
	}
	g := strings.SplitN(rest, " ", 3)
	if len(g) < 2 {
		return fmt.Errorf("want PATH TYPE MODE UID:GID ...: %q", line)
	}
	mode, err := strconv.ParseUint(g[0], 8, 32)
	if err != nil {
		return fmt.Errorf("mode %q: %w", g[0], err)
	}
	var uid, gid int
	if _, err := fmt.Sscanf(g[1], "%d:%d", &uid, &gid); err != nil {
		return fmt.Errorf("owner %q: %w", g[1], err)
	}
	switch f[1] {
	case "dir":
		if err := os.Mkdir(p, 0o700); err != nil && !(f[0] == "/" && errors.Is(err, fs.ErrExist)) {
			return err
		}
	case "file":
		var data []byte
		if len(g) == 3 {
			if name, ok := strings.CutPrefix(g[2], "@"); ok {
				if data, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
					return err
				}
			} else {
				s, err := strconv.Unquote(g[2])
				if err != nil {
					return fmt.Errorf("content %s: %w", g[2], err)
				}
				data = []byte(s)
			}
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown type %q (want dir, file or symlink)", f[1])
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, os.FileMode(mode&0o777)|modeBits(uint32(mode)))
}

func modeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}
