package initramfs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
)

var epoch = time.Unix(1704067200, 0)

func sample(t *testing.T) *Archive {
	t.Helper()
	a := New()
	for _, err := range []error{
		a.File("init", []byte("#!/bin/sh\n"), 0o755),
		a.File("lib/modules/6.1.0-50-amd64/kernel/drivers/block/virtio_blk.ko", []byte("module"), 0o644),
		a.Symlink("bin/sh", "busybox"),
		a.File("bin/busybox", []byte("\x7fELF"), 0o755),
		a.Dir("root", 0o700),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// TestCpioGolden pins the bytes of a small archive: reproducibility is
// the point, so any change in layout must show up here.
func TestCpioGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sample(t).WriteCpio(&b, epoch); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("testdata", "sample.cpio")
	if os.Getenv("KILN_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("archive differs from %s", p)
	}
}

// TestCpioReadsBack: the library's reader sees the entries sorted,
// parents first, inodes counted, owner root, the one mtime.
func TestCpioReadsBack(t *testing.T) {
	var b bytes.Buffer
	if err := sample(t).WriteCpio(&b, epoch); err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(&b)
	var got []string
	for ino := int64(1); ; ino++ {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Inode != ino || h.Uid != 0 || h.Guid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: inode %d uid %d gid %d mtime %v", h.Name, h.Inode, h.Uid, h.Guid, h.ModTime)
		}
		body, _ := io.ReadAll(r)
		desc := fmt.Sprintf("%s %o", h.Name, uint32(h.Mode))
		if h.Linkname != "" {
			desc += " -> " + h.Linkname
		} else if len(body) > 0 {
			desc += " " + string(body)
		}
		got = append(got, desc)
	}
	want := []string{
		"bin 40755", "bin/busybox 100755 \x7fELF", "bin/sh 120777 -> busybox", "init 100755 #!/bin/sh\n",
		"lib 40755", "lib/modules 40755", "lib/modules/6.1.0-50-amd64 40755",
		"lib/modules/6.1.0-50-amd64/kernel 40755", "lib/modules/6.1.0-50-amd64/kernel/drivers 40755",
		"lib/modules/6.1.0-50-amd64/kernel/drivers/block 40755",
		"lib/modules/6.1.0-50-amd64/kernel/drivers/block/virtio_blk.ko 100644 module", "root 40700",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%q\nwant\n%q", got, want)
	}
}

// TestBusyboxCpioLists runs a real cpio (the Debian tree's busybox) on
// the archive: another implementation must read it.
func TestBusyboxCpioLists(t *testing.T) {
	tree := os.Getenv("KILN_DEBIAN_TREE")
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs busybox cpio chrooted in the Debian tree")
	}
	if _, err := os.Stat(filepath.Join(tree, "bin/busybox")); tree == "" || err != nil {
		t.Skip("needs a Debian tree with busybox in KILN_DEBIAN_TREE: ", err)
	}
	var b bytes.Buffer
	if err := sample(t).WriteCpio(&b, epoch); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("chroot", tree, "/bin/busybox", "cpio", "-t")
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v: %s", err, out)
	}
	want := "bin\nbin/busybox\nbin/sh\ninit\nlib\nlib/modules\nlib/modules/6.1.0-50-amd64\n" +
		"lib/modules/6.1.0-50-amd64/kernel\nlib/modules/6.1.0-50-amd64/kernel/drivers\n" +
		"lib/modules/6.1.0-50-amd64/kernel/drivers/block\nlib/modules/6.1.0-50-amd64/kernel/drivers/block/virtio_blk.ko\nroot\n"
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("busybox cpio -t lists:\n%s", out)
	}
}

func TestGzipReproducible(t *testing.T) {
	sum := func() string {
		var b bytes.Buffer
		if err := sample(t).Write(&b, Gzip, epoch); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if zr.Name != "" || !zr.ModTime.IsZero() {
			t.Errorf("gzip header has name %q time %v", zr.Name, zr.ModTime)
		}
		s := sha256.Sum256(b.Bytes())
		return hex.EncodeToString(s[:])
	}
	if a, b := sum(), sum(); a != b {
		t.Errorf("two writes differ: %s %s", a, b)
	}
}

func TestArchiveRefuses(t *testing.T) {
	a := New()
	if err := a.File("bin", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"dotdot":       a.File("../etc/passwd", nil, 0o644),
		"unclean":      a.File("a//b", nil, 0o644),
		"empty":        a.File("", nil, 0o644),
		"twice":        a.File("bin", nil, 0o644),
		"under a file": a.File("bin/sh", nil, 0o755),
		"newline":      a.File("a\nb", nil, 0o644),
	} {
		if !errors.Is(err, ErrPath) {
			t.Errorf("%s: %v, want ErrPath", name, err)
		}
	}
}

func TestReadELF(t *testing.T) {
	exe, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("needs /bin/sh: ", err)
	}
	info, err := ReadELF(exe)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("readelf", "-d", "-l", "/bin/sh").Output()
	if err != nil {
		t.Skip("needs readelf (binutils): ", err)
	}
	if info.Interp == "" || !strings.Contains(string(out), "[Requesting program interpreter: "+info.Interp+"]") {
		t.Errorf("interpreter %q not what readelf says:\n%s", info.Interp, out)
	}
	if len(info.Needed) == 0 {
		t.Error("no DT_NEEDED")
	}
	for _, n := range info.Needed {
		if !strings.Contains(string(out), "Shared library: ["+n+"]") {
			t.Errorf("needed %q not what readelf says", n)
		}
	}
	if _, err := ReadELF([]byte("#!/bin/sh\n")); err == nil {
		t.Error("a script read as ELF")
	}
}

// TestInitScriptParses checks /init with the shell's parser (dash -n;
// busybox's ash parses the same POSIX syntax) and that a module path that
// could break out of the script is refused.
func TestInitScriptParses(t *testing.T) {
	s, err := Init([]string{"/lib/modules/6.1.0-50-amd64/kernel/drivers/virtio/virtio.ko", "/lib/modules/6.1.0-50-amd64/kernel/fs/ext4/ext4.ko"}, 30)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(f, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("needs dash: ", err)
	}
	if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
		t.Errorf("dash -n: %v: %s\n%s", err, out, s)
	}
	if !strings.Contains(s, "[ $i -ge 300 ]") {
		t.Error("root wait is not 300 tenths of a second")
	}
	for _, bad := range []string{"/lib/modules/x/a.ko; reboot", "/lib/modules/x/$(reboot).ko", "/lib/modules/../../etc/x.ko", "/tmp/x.ko"} {
		if _, err := Init([]string{bad}, 30); !errors.Is(err, ErrPath) {
			t.Errorf("Init(%q): %v, want ErrPath", bad, err)
		}
	}
}
