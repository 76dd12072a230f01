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
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/internal/fsmeta/fsmetatest"
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
	err := fsmetatest.Walk(root, func(e *fsmetatest.Entry) error {
		rel := "/"
		if e.Rel != "." {
			rel += filepath.ToSlash(e.Rel)
		}
		out[rel] = describe(e)
		return nil
	})
	return out, err
}

func describe(e *fsmetatest.Entry) string {
	st := &e.Stat
	owner := fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	mode := fmt.Sprintf("%04o", st.Mode&fsmeta.PermBits)
	var b strings.Builder
	switch e.Type() {
	case unix.S_IFDIR:
		fmt.Fprintf(&b, "dir %s %s", mode, owner)
	case unix.S_IFREG:
		fmt.Fprintf(&b, "file %s %s %s", mode, owner, content(e.Content))
		if st.Nlink > 1 {
			fmt.Fprintf(&b, " links=%d", st.Nlink)
		}
	case unix.S_IFLNK:
		if owner == "0:0" {
			fmt.Fprintf(&b, "symlink -> %s", e.Target)
		} else {
			fmt.Fprintf(&b, "symlink %s -> %s", owner, e.Target)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		kind := "char"
		if e.Type() == unix.S_IFBLK {
			kind = "block"
		}
		fmt.Fprintf(&b, "%s %s %s %d,%d", kind, mode, owner, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		fmt.Fprintf(&b, "fifo %s %s", mode, owner)
	default:
		fmt.Fprintf(&b, "other %o %s", st.Mode, owner)
	}
	// security.selinux labels the host's filesystem may add are left out.
	for _, x := range fsmetatest.XattrStrings(e.Xattrs, "xattr:%s=%q", "security.selinux") {
		b.WriteString(" " + x)
	}
	return b.String()
}

func content(data []byte) string {
	if len(data) <= maxQuoted && utf8.Valid(data) {
		return strconv.Quote(string(data))
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("size=%d sha256=%s", len(data), hex.EncodeToString(sum[:]))
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
