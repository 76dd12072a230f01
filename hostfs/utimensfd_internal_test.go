package hostfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUtimensFd sets times through O_PATH descriptors of a directory, a
// file and a symlink (its own times, not its target's), with AT_EMPTY_PATH
// and with the procfs fallback of older kernels.
func TestUtimensFd(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(map[bool]string{false: "empty-path", true: "procfs"}[fallback], func(t *testing.T) {
			noEmptyPathUtimens.Store(fallback)
			defer noEmptyPathUtimens.Store(false)
			dir := t.TempDir()
			file := filepath.Join(dir, "file")
			link := filepath.Join(dir, "link")
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("file", link); err != nil {
				t.Fatal(err)
			}
			var fileBefore unix.Stat_t
			if err := unix.Stat(file, &fileBefore); err != nil {
				t.Fatal(err)
			}
			for i, p := range []string{dir, file, link} {
				fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				want := unix.Timespec{Sec: int64(1000 + i), Nsec: 7}
				err = utimensFd(fd, []unix.Timespec{want, want})
				closeFd(fd)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					t.Fatal(err)
				}
				if st.Mtim != want || st.Atim != want {
					t.Errorf("%s: mtime %v atime %v, want %v", p, st.Mtim, st.Atim, want)
				}
			}
			var st unix.Stat_t
			if err := unix.Stat(file, &st); err != nil || st.Mtim != (unix.Timespec{Sec: 1001, Nsec: 7}) {
				t.Errorf("the symlink's change reached its target: %v %v", st.Mtim, err)
			}
		})
	}
}
