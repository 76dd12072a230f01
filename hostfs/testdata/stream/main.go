//go:build wasip1

// Command stream calls the kiln_hostfs stream imports (and, as "stream
// writefile", write_file) with raw arguments,
// hostile ones included, and prints "name errno [detail]" for each:
// TestStreamABI compares the lines with docs/hostfs.md. The test lays out
// /run/kiln/sources with hello.gz, hello.xz, hello.zst, hello.bz2, plain,
// ranged (a gzip member between other bytes, at offset 3), corrupt.gz,
// truncated.gz, a directory dir, and out -> the host directory outside
// the roots, which holds secret.gz, and up -> ../outside.
package main

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

//go:wasmimport kiln_hostfs stream_open
func rawOpen(path, pathLen uint32, offset, length int64, kind, handle uint32) uint32

//go:wasmimport kiln_hostfs stream_read
func rawRead(handle, buf, bufLen, size uint32) uint32

//go:wasmimport kiln_hostfs stream_error
func rawError(handle, buf, bufLen, size uint32) uint32

//go:wasmimport kiln_hostfs stream_close
func rawClose(handle uint32) uint32

const bad = 0xfffffff0 // past the end of guest memory

// keep holds every buffer whose address is handed to the host: escaping
// to the heap, it never moves, as a buffer on a growing stack would.
var keep [][]byte

func addr(b []byte) (uint32, uint32) {
	keep = append(keep, b)
	if len(b) == 0 {
		return 0, 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b))
}

var word = make([]byte, 4)

func wordp() uint32 { p, _ := addr(word); return p }

func u32() uint32 {
	return uint32(word[0]) | uint32(word[1])<<8 | uint32(word[2])<<16 | uint32(word[3])<<24
}

func open(path string, off, n int64, kind uint32) (uint32, uint32) {
	p, l := addr([]byte(path))
	rc := rawOpen(p, l, off, n, kind, wordp())
	return rc, u32()
}

// readAll reads h to its end in reads of at most chunk bytes.
func readAll(h uint32, chunk int) (string, uint32) {
	var out []byte
	buf := make([]byte, chunk)
	bp, bl := addr(buf)
	for {
		if rc := rawRead(h, bp, bl, wordp()); rc != 0 {
			return string(out), rc
		}
		n := u32()
		if n == 0 {
			return string(out), 0
		}
		out = append(out, buf[:n]...)
	}
}

func errText(h uint32) string {
	buf := make([]byte, 256)
	bp, bl := addr(buf)
	if rc := rawError(h, bp, bl, wordp()); rc != 0 {
		return fmt.Sprint("stream_error ", rc)
	}
	return string(buf[:u32()])
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "writefile" {
		writeFile()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "tar" {
		tarCalls()
		return
	}
	sources := "/run/kiln/sources/"
	for _, c := range []struct {
		name string
		kind uint32
	}{{"hello.gz", 0}, {"hello.xz", 0}, {"hello.zst", 0}, {"hello.bz2", 0}, {"plain", 0},
		{"hello.gz", 2}, {"hello.xz", 3}, {"hello.zst", 4}, {"hello.bz2", 5}, {"hello.gz", 1}} {
		rc, h := open(sources+c.name, 0, -1, c.kind)
		if rc != 0 {
			fmt.Println("open", c.name, c.kind, rc)
			continue
		}
		got, rc := readAll(h, 3)
		if c.kind == 1 {
			got = fmt.Sprintf("%d bytes", len(got)) // the gzip bytes as they are
		}
		fmt.Printf("read %s %d %d %q\n", c.name, c.kind, rc, got)
		fmt.Println("close", rawClose(h))
	}

	fi, err := os.Stat(sources + "ranged")
	if err != nil {
		fmt.Println(err)
		return
	}
	rc, h := open(sources+"ranged", 3, fi.Size()-6, 2)
	got, rrc := readAll(h, 1<<20)
	fmt.Printf("range %d %d %q\n", rc, rrc, got)
	rawClose(h)

	for _, c := range []struct {
		label, path string
		off, n      int64
		kind        uint32
	}{
		{"escape-symlink", sources + "out/secret.gz", 0, -1, 0},
		{"escape-relative", sources + "up/secret.gz", 0, -1, 0},
		{"dotdot", "/../../../outside/secret.gz", 0, -1, 0},
		{"directory", sources + "dir", 0, -1, 0},
		{"missing", sources + "nope", 0, -1, 0},
		{"bad-kind", sources + "hello.gz", 0, -1, 6},
		{"negative-offset", sources + "hello.gz", -1, -1, 0},
		{"bad-length", sources + "hello.gz", 0, -2, 0},
		{"past-end", sources + "hello.gz", 1 << 40, -1, 0},
		{"range-past-end", sources + "hello.gz", 1, 1 << 40, 0},
		{"nul", sources + "hello\x00.gz", 0, -1, 0},
		{"long", "/" + strings.Repeat("a", 4100), 0, -1, 0},
	} {
		rc, _ := open(c.path, c.off, c.n, c.kind)
		fmt.Println("open", c.label, rc)
	}
	p, _ := addr([]byte(sources + "hello.gz"))
	fmt.Println("open oversized-len", rawOpen(p, bad, 0, -1, 0, wordp()))
	fmt.Println("open efault-path-ptr", rawOpen(bad, 8, 0, -1, 0, wordp()))
	p, l := addr([]byte(sources + "hello.gz"))
	fmt.Println("open efault-handle", rawOpen(p, l, 0, -1, 0, bad))

	for _, name := range []string{"corrupt.gz", "truncated.gz"} {
		rc, h := open(sources+name, 0, -1, 0)
		_, rrc := readAll(h, 4096)
		fmt.Printf("read %s %d %d %q\n", name, rc, rrc, errText(h))
		rawClose(h)
	}

	rc, h = open(sources+"hello.gz", 0, -1, 0)
	buf := make([]byte, 16)
	bp, bl := addr(buf)
	fmt.Println("read efault-buf", rc, rawRead(h, bad, 64, wordp()))
	fmt.Println("read huge-len", rawRead(h, bp, 0xffffffff, wordp()))
	fmt.Println("read efault-size", rawRead(h, bp, bl, bad))
	fmt.Println("read bad-handle", rawRead(h+1000, bp, bl, wordp()))
	fmt.Println("error bad-handle", rawError(h+1000, bp, bl, wordp()))
	fmt.Println("close", rawClose(h))
	fmt.Println("close again", rawClose(h))
	fmt.Println("read closed", rawRead(h, bp, bl, wordp()))

	// The ninth stream open at once is refused; closing one frees a place.
	var open8 []uint32
	for i := range 9 {
		rc, h := open(sources+"hello.gz", 0, -1, 0)
		if rc != 0 {
			fmt.Println("open stream", i+1, rc)
			break
		}
		open8 = append(open8, h)
	}
	rawClose(open8[0])
	rc, _ = open(sources+"hello.gz", 0, -1, 0)
	fmt.Println("open after close", rc)
	// The rest are left open: the host closes them when the module does.
	if len(os.Args) > 1 && os.Args[1] == "exit" {
		os.Exit(0)
	}
}

//go:wasmimport kiln_hostfs write_file
func rawWriteFile(path, pathLen, data, dataLen, mode, uid, gid uint32, mtimeSec int64, mtimeNsec, flags uint32) uint32

// writeFile calls write_file; the tree holds dir/file, link -> new, out ->
// the host directory outside and up -> ../outside, and out-file -> the
// host file outside/secret.
func writeFile() {
	const utimeNow, utimeOmit = 0x3fffffff, 0x3ffffffe
	w := func(label, path, data string, mode, uid, gid uint32, sec int64, nsec, flags uint32) {
		p, l := addr([]byte(path))
		d, dl := addr([]byte(data))
		fmt.Println("write_file", label, rawWriteFile(p, l, d, dl, mode, uid, gid, sec, nsec, flags))
	}
	const keep = 0xffffffff
	w("ok", "/new", "abc", 0o4755, 1000, 1001, 1600000000, 500000000, 0)
	w("exists", "/new", "abc", 0o644, keep, keep, 0, utimeOmit, 0)
	w("replace", "/new", "xyz", 0o4755, 1000, 1001, 1600000000, 500000000, 1)
	w("append", "/new", "+more", 0o4755, 1000, 1001, 1600000000, 500000000, 2)
	w("empty", "/empty", "", 0o600, keep, keep, 0, utimeOmit, 0)
	w("replace-nonempty-dir", "/dir", "x", 0o644, keep, keep, 0, utimeOmit, 1)
	w("replace-into-dir", "/dir/", "x", 0o644, keep, keep, 0, utimeOmit, 1)
	w("append-missing", "/nope", "x", 0o644, keep, keep, 0, utimeOmit, 2)
	w("append-symlink", "/link", "x", 0o644, keep, keep, 0, utimeOmit, 2)
	w("append-dir", "/dir", "x", 0o644, keep, keep, 0, utimeOmit, 2)
	w("both-flags", "/f", "x", 0o644, keep, keep, 0, utimeOmit, 3)
	w("bad-flags", "/f", "x", 0o644, keep, keep, 0, utimeOmit, 4)
	w("bad-mode", "/f", "x", 0o10644, keep, keep, 0, utimeOmit, 0)
	w("nsec-range", "/f", "x", 0o644, keep, keep, 0, 1000000000, 0)
	w("utime-now", "/f", "x", 0o644, keep, keep, 0, utimeNow, 0)
	w("read-only", "/run/kiln/sources/hello.gz", "x", 0o644, keep, keep, 0, utimeOmit, 1)
	w("through-abs-symlink", "/out/evil", "x", 0o644, keep, keep, 0, utimeOmit, 0)
	w("through-rel-symlink", "/up/evil", "x", 0o644, keep, keep, 0, utimeOmit, 0)
	w("dotdot", "/../../outside/evil", "x", 0o644, keep, keep, 0, utimeOmit, 0)
	w("replace-symlink-out", "/out-file", "mine", 0o644, keep, keep, 0, utimeOmit, 1)
	w("nul", "/f\x00", "x", 0o644, keep, keep, 0, utimeOmit, 0)
	w("long", "/"+strings.Repeat("a", 4100), "x", 0o644, keep, keep, 0, utimeOmit, 0)
	p, l := addr([]byte("/f"))
	fmt.Println("write_file efault-data", rawWriteFile(p, l, bad, 64, 0o644, keep, keep, 0, utimeOmit, 0))
	fmt.Println("write_file huge-len", rawWriteFile(p, l, p, 0xffffffff, 0o644, keep, keep, 0, utimeOmit, 0))
}

//go:wasmimport kiln_hostfs tar_next
func rawTarNext(handle, buf, bufLen, size uint32) uint32

//go:wasmimport kiln_hostfs tar_write
func rawTarWrite(handle, path, pathLen, mode, uid, gid uint32, mtimeSec int64, mtimeNsec, flags, sum uint32) uint32

// next calls tar_next with a buffer of n bytes and prints its errno, the
// record's size, and for a record its type flag, name and size.
func next(label string, h uint32, n int) {
	buf := make([]byte, n)
	bp, bl := addr(buf)
	rc := rawTarNext(h, bp, bl, wordp())
	size := u32()
	if rc != 0 || size < 80 || size > uint32(n) {
		fmt.Println("tar_next", label, rc, size)
		return
	}
	le := func(i int) uint64 {
		var v uint64
		for k := 7; k >= 0; k-- {
			v = v<<8 | uint64(buf[i+k])
		}
		return v
	}
	nameLen := int(le(68) & 0xffffffff)
	fmt.Printf("tar_next %s %d %c %q %d\n", label, rc, buf[64], buf[80:80+nameLen], le(0))
}

// tarCalls calls tar_next and tar_write; /run/kiln/sources holds
// archive.tar.gz (dir/, dir/file, link -> dir/file, big of 3 MiB),
// truncated.tar (dir/file cut short) and plain; the tree has out -> the
// host directory outside.
func tarCalls() {
	const keep = 0xffffffff
	const utimeOmit = 0x3ffffffe
	src := "/run/kiln/sources/"
	sum := make([]byte, 16)
	sp, _ := addr(sum)
	w := func(label string, h uint32, path string, mode uint32, nsec, flags, sumPtr uint32) {
		p, l := addr([]byte(path))
		fmt.Println("tar_write", label, rawTarWrite(h, p, l, mode, 1000, 1001, 1600000000, nsec, flags, sumPtr))
	}
	_, h := open(src+"archive.tar.gz", 0, -1, 0)
	w("before-next", h, "/x", 0o644, 0, 0, 0)
	next("small-buffer", h, 16)
	next("dir", h, 4096)
	w("dir-member", h, "/x", 0o644, 0, 0, 0)
	next("file", h, 4096)
	w("bad-mode", h, "/file", 0o10644, 0, 0, 0)
	w("bad-flags", h, "/file", 0o644, 0, 2, 0)
	w("nsec-range", h, "/file", 0o644, 1000000000, 0, 0)
	w("utime-now", h, "/file", 0o644, 0x3fffffff, 0, 0)
	w("efault-sum", h, "/file", 0o644, 0, 1, bad)
	w("read-only", h, src+"x", 0o644, 0, 0, 0)
	w("through-abs-symlink", h, "/out/evil", 0o644, 0, 0, 0)
	w("dotdot", h, "/../../outside/evil", 0o644, 0, 0, 0)
	w("ok", h, "/file", 0o4755, 500000000, 1, sp)
	fmt.Printf("tar_write md5 %x\n", sum)
	w("again", h, "/file2", 0o644, 0, 0, 0)
	next("link", h, 4096)
	w("symlink-member", h, "/x", 0o644, 0, 0, 0)
	next("big", h, 4096)
	w("big", h, "/big", 0o600, utimeOmit, 0, 0)
	next("end", h, 4096)
	next("after-end", h, 4096)
	buf := make([]byte, 16)
	bp, bl := addr(buf)
	fmt.Println("stream_read tar-stream", rawRead(h, bp, bl, wordp()))
	fmt.Println("tar_next efault-buf", rawTarNext(h, bad, 64, wordp()))
	fmt.Println("tar_next efault-size", rawTarNext(h, bp, bl, bad))
	fmt.Println("close", rawClose(h))
	fmt.Println("tar_next closed", rawTarNext(h, bp, bl, wordp()))
	w("closed", h, "/x", 0o644, 0, 0, 0)

	_, h = open(src+"plain", 0, -1, 0)
	rawRead(h, bp, bl, wordp())
	fmt.Println("tar_next read-stream", rawTarNext(h, bp, bl, wordp()))
	rawClose(h)

	_, h = open(src+"plain", 0, -1, 0)
	next("not-tar", h, 4096)
	fmt.Printf("stream_error not-tar %q\n", errText(h))
	rawClose(h)

	_, h = open(src+"truncated.tar", 0, -1, 0)
	next("truncated", h, 4096)
	w("truncated", h, "/cut", 0o644, 0, 0, 0)
	fmt.Printf("stream_error truncated %q\n", errText(h))
	next("after-error", h, 4096)
	rawClose(h)
}
