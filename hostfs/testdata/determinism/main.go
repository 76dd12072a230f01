// Command determinism is a stage that prints everything of its files a
// stage could take from the host: times, device and inode numbers,
// directory order. hostfs's TestDeterminism runs it over trees on different
// filesystems and wants the same output every time, with the epoch as every
// time. "determinism fill <path>" writes to <path> until the disk is full and
// fails the way every SDK stage does.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "fill" {
		p := os.Args[2]
		sdk.Run(func(struct{}) error { return fill(p) })
	}
	if err := tree(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func fill(p string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i) | 1 // not zeros, so no filesystem can elide it
	}
	for {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
}

func tree() error {
	// Created in an order no sort gives, with names whose bytes sort
	// differently from their letters.
	if err := os.Mkdir("/d", 0o755); err != nil {
		return err
	}
	for _, name := range []string{"c", "a", "é", "B", "b", "a0", "Z"} {
		if err := os.WriteFile("/d/"+name, []byte(name), 0o644); err != nil {
			return err
		}
	}
	for _, step := range []error{
		os.Mkdir("/d/sub", 0o755),
		os.Symlink("c", "/d/link"),
		os.Link("/d/a", "/d/hard"),
		// An inode that dies: a host that reuses its number must not
		// show the next file an old number.
		os.WriteFile("/d/gone", nil, 0o644),
		show("/d/gone"),
		os.Remove("/d/gone"),
		os.WriteFile("/d/new", nil, 0o644),
		appendTo("/old"), // a file of the tree, changed
	} {
		if step != nil {
			return step
		}
	}
	d, err := os.Open("/d")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1) // the directory's order: not sorted by os
	d.Close()
	if err != nil {
		return err
	}
	fmt.Println("readdir", strings.Join(names, " "))
	for _, p := range []string{"/", "/d", "/old"} {
		if err := show(p); err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := show("/d/" + n); err != nil {
			return err
		}
	}
	return nil
}

func appendTo(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, "more"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// show prints what WASI's filestat and kiln_hostfs's lstat say of p.
func show(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no syscall.Stat_t")
	}
	k, err := sdk.Lstat(p)
	if err != nil {
		return err
	}
	fmt.Printf("%s wasi dev=%d ino=%d nlink=%d size=%d atime=%d mtime=%d ctime=%d hostfs dev=%d ino=%d nlink=%d size=%d atime=%d mtime=%d\n",
		p, st.Dev, st.Ino, st.Nlink, st.Size, st.Atime, st.Mtime, st.Ctime,
		k.Dev, k.Ino, k.Nlink, k.Size, k.Atime.UnixNano(), k.Mtime.UnixNano())
	return nil
}
