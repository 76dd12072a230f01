package sdk

import (
	"io/fs"
	"testing"
	"time"
	"unsafe"
)

// TestKilnStatLayout pins struct kiln_stat to the offsets docs/hostfs.md
// gives the C and Rust SDKs.
func TestKilnStatLayout(t *testing.T) {
	var k kilnStat
	for _, c := range []struct {
		field     string
		got, want uintptr
	}{
		{"dev", unsafe.Offsetof(k.Dev), 0},
		{"ino", unsafe.Offsetof(k.Ino), 8},
		{"mode", unsafe.Offsetof(k.Mode), 16},
		{"nlink", unsafe.Offsetof(k.Nlink), 20},
		{"uid", unsafe.Offsetof(k.Uid), 24},
		{"gid", unsafe.Offsetof(k.Gid), 28},
		{"rdev", unsafe.Offsetof(k.Rdev), 32},
		{"size", unsafe.Offsetof(k.Size), 40},
		{"atime_sec", unsafe.Offsetof(k.AtimeSec), 48},
		{"atime_nsec", unsafe.Offsetof(k.AtimeNsec), 56},
		{"mtime_sec", unsafe.Offsetof(k.MtimeSec), 64},
		{"mtime_nsec", unsafe.Offsetof(k.MtimeNsec), 72},
		{"sizeof", unsafe.Sizeof(k), 80},
	} {
		if c.got != c.want {
			t.Errorf("kiln_stat.%s at %d, want %d", c.field, c.got, c.want)
		}
	}
}

func TestStatConversion(t *testing.T) {
	for _, c := range []struct {
		name         string
		rdev         uint64 // Linux makedev encoding
		major, minor uint32
	}{
		{"null", 0x103, 1, 3},
		{"sda1", 0x801, 8, 1},
		{"nvme", 0x11110370, 259, 70000},
		{"wide", 0xff000ffffffff, 0xfffff, 0xfffff},
		{"32-bit minor", 0xfffffffffff, 4095, 0xffffffff},
	} {
		s := Stat{Rdev: c.rdev}
		if s.Major() != c.major || s.Minor() != c.minor {
			t.Errorf("%s: rdev %#x = %d:%d, want %d:%d", c.name, c.rdev, s.Major(), s.Minor(), c.major, c.minor)
		}
	}
	k := kilnStat{Mode: 0o020000 | 0o4755, MtimeSec: 5, MtimeNsec: 6}
	st := k.stat()
	if st.Mode != fs.ModeDevice|fs.ModeCharDevice|fs.ModeSetuid|0o755 || st.RawMode != 0o024755 {
		t.Errorf("mode %v raw %o", st.Mode, st.RawMode)
	}
	if !st.Mtime.Equal(time.Unix(5, 6)) {
		t.Errorf("mtime %v", st.Mtime)
	}
}
