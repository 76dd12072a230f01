// Command wellbehaved is a stage that builds a small OS tree the way real
// stages do, with every kiln_hostfs call: modes, owners, device nodes,
// xattrs and exact times. It checks what it can see itself (sdk.Lstat,
// xattr round trips, refused device opens) and prints one line per step;
// hostfs's test then checks the tree on the host. Run as root only: it
// chowns, makes device nodes and sets trusted.* and security.* xattrs.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

func main() {
	failed := false
	for _, s := range []struct {
		name string
		fn   func() error
	}{
		{"files", files},
		{"owners", owners},
		{"devices", devices},
		{"xattrs", xattrs},
		{"times", times},
		{"lstat", lstat},
		{"inputs", inputs},
	} {
		if err := s.fn(); err != nil {
			fmt.Printf("FAIL %s: %v\n", s.name, err)
			failed = true
			continue
		}
		fmt.Printf("ok %s\n", s.name)
	}
	if failed {
		os.Exit(1)
	}
}

func files() error {
	for _, d := range []string{"/etc", "/etc/ssh", "/usr/bin", "/usr/share/zoneinfo", "/home/user", "/etc/alternatives", "/run", "/var", "/dev"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		// wazero made it 0700 whatever was asked; set the real mode.
		if err := sdk.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	for name, data := range map[string]string{
		"/etc/hostname":            "kiln-image\n",
		"/usr/share/zoneinfo/UTC":  "TZif2",
		"/usr/bin/sudo":            "#!sudo\n",
		"/usr/bin/ping":            "#!ping\n",
		"/home/user/.profile":      "export PS1\n",
		"/etc/ssh/sshd_config.tmp": "Port 22\n",
	} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			return err
		}
	}
	if err := sdk.Chmod("/etc/hostname", 0o644); err != nil {
		return err
	}
	if err := os.Rename("/etc/ssh/sshd_config.tmp", "/etc/ssh/sshd_config"); err != nil {
		return err
	}
	if err := os.Symlink("/usr/share/zoneinfo/UTC", "/etc/localtime"); err != nil {
		return err
	}
	if err := os.Symlink("/usr/bin/vim", "/etc/alternatives/editor"); err != nil {
		return err
	}
	if err := os.Link("/usr/bin/sudo", "/usr/bin/sudoedit"); err != nil {
		return err
	}
	data, err := os.ReadFile("/etc/localtime")
	if err != nil || string(data) != "TZif2" {
		return fmt.Errorf("read through /etc/localtime: %q, %v", data, err)
	}
	return nil
}

func owners() error {
	// Owner first, then mode: a chown clears setuid.
	if err := sdk.Lchown("/usr/bin/sudo", 0, 0); err != nil {
		return err
	}
	if err := sdk.Chmod("/usr/bin/sudo", 0o755|fs.ModeSetuid); err != nil {
		return err
	}
	if err := sdk.Lchown("/home/user", 1000, 1000); err != nil {
		return err
	}
	if err := sdk.Lchown("/home/user/.profile", 1000, 100); err != nil {
		return err
	}
	if err := sdk.Chmod("/home/user/.profile", 0o600); err != nil {
		return err
	}
	if err := sdk.Chmod("/run", 0o755|fs.ModeSticky); err != nil {
		return err
	}
	// A symlink's own owner; its (missing) target is not followed.
	if err := sdk.Lchown("/etc/alternatives/editor", 1000, 1000); err != nil {
		return err
	}
	// -1 keeps the uid.
	return sdk.Lchown("/etc/ssh/sshd_config", -1, 22)
}

func devices() error {
	for _, d := range []struct {
		path         string
		mode         fs.FileMode
		major, minor uint32
	}{
		{"/dev/null", fs.ModeDevice | fs.ModeCharDevice | 0o666, 1, 3},
		{"/dev/sda", fs.ModeDevice | 0o660, 8, 0},
		{"/dev/big", fs.ModeDevice | fs.ModeCharDevice | 0o600, 4095, 1<<20 - 1},
		{"/run/initctl", fs.ModeNamedPipe | 0o600, 0, 0},
		{"/var/empty", 0o640, 0, 0},
	} {
		if err := sdk.Mknod(d.path, d.mode, d.major, d.minor); err != nil {
			return err
		}
	}
	for _, p := range []string{"/dev/null", "/dev/sda", "/run/initctl"} {
		if f, err := os.Open(p); err == nil {
			f.Close()
			return fmt.Errorf("opened %s: device nodes and FIFOs must not open", p)
		} else if !errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("open %s: %v, want EPERM", p, err)
		}
	}
	if err := sdk.Mknod("/dev/null", fs.ModeNamedPipe|0o600, 0, 0); !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mknod over an existing node: %v, want EEXIST", err)
	}
	// Linux keeps 12 bits of major and 20 of minor: more is refused, not cut.
	if err := sdk.Mknod("/dev/huge", fs.ModeDevice|0o600, 1, 1<<20); !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("mknod with a 21-bit minor: %v, want EINVAL", err)
	}
	if err := sdk.Mknod("/dev/dir", fs.ModeDir|0o755, 0, 0); !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("mknod of a directory: %v, want EINVAL", err)
	}
	return nil
}

// capNetRaw is a vfs_cap_data revision 2 granting CAP_NET_RAW, effective.
func capNetRaw() []byte {
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return b[:]
}

func xattrs() error {
	set := map[string][]byte{
		"user.kiln.origin":       []byte("stage"),
		"trusted.overlay.opaque": []byte("y"),
		"security.capability":    capNetRaw(),
	}
	for name, v := range set {
		if err := sdk.SetXattr("/usr/bin/ping", name, v, 0); err != nil {
			return err
		}
	}
	for name, v := range set {
		got, err := sdk.GetXattr("/usr/bin/ping", name)
		if err != nil || !bytes.Equal(got, v) {
			return fmt.Errorf("getxattr %s: %x, %v", name, got, err)
		}
	}
	names, err := sdk.ListXattr("/usr/bin/ping")
	if err != nil {
		return err
	}
	for name := range set {
		if !slices.Contains(names, name) {
			return fmt.Errorf("listxattr %v lacks %s", names, name)
		}
	}
	if err := sdk.SetXattr("/usr/bin/ping", "user.kiln.origin", []byte("x"), sdk.XattrCreate); !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("XattrCreate on an existing attribute: %v", err)
	}
	if err := sdk.SetXattr("/usr/bin/ping", "user.kiln.gone", []byte("x"), 0); err != nil {
		return err
	}
	if err := sdk.RemoveXattr("/usr/bin/ping", "user.kiln.gone"); err != nil {
		return err
	}
	if _, err := sdk.GetXattr("/usr/bin/ping", "user.kiln.gone"); !errors.Is(err, sdk.ENOATTR) {
		return fmt.Errorf("getxattr of a removed attribute: %v, want ENOATTR", err)
	}
	// trusted.* works on a symlink itself (user.* does not, on Linux).
	return sdk.SetXattr("/etc/localtime", "trusted.kiln.link", []byte("l"), 0)
}

func times() error {
	at, mt := time.Unix(1000, 123456789), time.Unix(2000, 987654321)
	if err := sdk.Utimens("/etc/hostname", at, mt); err != nil {
		return err
	}
	// On the symlink itself: its target keeps its times.
	if err := sdk.Utimens("/etc/localtime", time.Unix(3000, 5), time.Unix(3000, 5)); err != nil {
		return err
	}
	// A zero time keeps that time (UTIME_OMIT).
	if err := sdk.Utimens("/etc/ssh/sshd_config", time.Unix(4000, 0), time.Unix(5000, 0)); err != nil {
		return err
	}
	if err := sdk.Utimens("/etc/ssh/sshd_config", time.Time{}, time.Unix(6000, 6)); err != nil {
		return err
	}
	// WASI's own path_filestat_set_times follows, through hostfs.
	return os.Chtimes("/usr/share/zoneinfo/UTC", time.Unix(7000, 0), time.Unix(8000, 8))
}

func lstat() error {
	for _, c := range []struct {
		path         string
		raw          uint32
		uid, gid     uint32
		major, minor uint32
		nlink        uint32
		mtime        time.Time
	}{
		{path: "/dev/null", raw: 0o020666, major: 1, minor: 3, nlink: 1},
		{path: "/dev/big", raw: 0o020600, major: 4095, minor: 1<<20 - 1, nlink: 1},
		{path: "/usr/bin/sudo", raw: 0o104755, nlink: 2},
		{path: "/home/user/.profile", raw: 0o100600, uid: 1000, gid: 100, nlink: 1},
		{path: "/etc/hostname", raw: 0o100644, nlink: 1, mtime: time.Unix(2000, 987654321)},
		{path: "/etc/localtime", raw: 0o120777, nlink: 1, mtime: time.Unix(3000, 5)},
	} {
		st, err := sdk.Lstat(c.path)
		if err != nil {
			return err
		}
		if st.RawMode != c.raw || st.Uid != c.uid || st.Gid != c.gid || st.Major() != c.major ||
			st.Minor() != c.minor || st.Nlink != c.nlink || (!c.mtime.IsZero() && !st.Mtime.Equal(c.mtime)) {
			return fmt.Errorf("lstat %s = %+v (mode %o, dev %d:%d)", c.path, st, st.RawMode, st.Major(), st.Minor())
		}
	}
	if _, err := sdk.Lstat("/missing"); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lstat /missing: %v", err)
	}
	fi, err := os.Lstat("/etc/localtime")
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		return fmt.Errorf("os.Lstat /etc/localtime: %v, %v", fi, err)
	}
	return nil
}

func inputs() error {
	data, err := os.ReadFile("/run/kiln/sources/input.txt")
	if err != nil {
		return err
	}
	if err := os.MkdirAll("/usr/share/doc", 0o755); err != nil {
		return err
	}
	if err := os.WriteFile("/usr/share/doc/input.txt", data, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile("/run/kiln/sources/input.txt", []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("write to the read-only input: %v, want EROFS", err)
	}
	if err := sdk.Chmod("/run/kiln/sources/input.txt", 0o777); !errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("chmod of the read-only input: %v, want EROFS", err)
	}
	st, err := sdk.Lstat("/run/kiln/sources/input.txt")
	if err != nil || st.Size != int64(len(data)) {
		return fmt.Errorf("lstat of the read-only input: %+v, %v", st, err)
	}
	return nil
}
