package initramfs

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// ELFInfo is what decides which files an executable needs at run time.
type ELFInfo struct {
	Interp    string   // PT_INTERP, "" for a static executable
	Needed    []string // DT_NEEDED, in order
	Multiarch string   // Debian's library directory name, e.g. x86_64-linux-gnu
}

var multiarch = map[elf.Machine]string{
	elf.EM_X86_64:  "x86_64-linux-gnu",
	elf.EM_386:     "i386-linux-gnu",
	elf.EM_AARCH64: "aarch64-linux-gnu",
	elf.EM_RISCV:   "riscv64-linux-gnu",
	elf.EM_PPC64:   "powerpc64le-linux-gnu",
	elf.EM_S390:    "s390x-linux-gnu",
}

// ReadELF reads an executable's or library's interpreter and needed
// libraries.
func ReadELF(data []byte) (*ELFInfo, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info := &ELFInfo{Multiarch: multiarch[f.Machine]}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("PT_INTERP: %w", err)
			}
			info.Interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	if f.Section(".dynamic") != nil || info.Interp != "" {
		libs, err := f.ImportedLibraries()
		if err != nil {
			return nil, fmt.Errorf("DT_NEEDED: %w", err)
		}
		info.Needed = libs
	}
	return info, nil
}

// LibraryDirs is where the dynamic loader of a Debian system looks for a
// library without RUNPATH, in its order.
func (i *ELFInfo) LibraryDirs() []string {
	var dirs []string
	if i.Multiarch != "" {
		dirs = append(dirs, "/lib/"+i.Multiarch, "/usr/lib/"+i.Multiarch)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}
