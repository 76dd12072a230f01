package hostfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
)

// TestStreamsEndWithTheModule opens streams through the host function, as a
// guest would, and leaves them open: closing the guest module instantiated
// with the mount table's context must stop every producer goroutine and
// close every file, read to the end or not.
func TestStreamsEndWithTheModule(t *testing.T) {
	dir := t.TempDir()
	// Bigger than what a stream decompresses ahead, so that a producer is
	// blocked on a full queue when the module closes.
	big := make([]byte, (streamAhead+2)*streamChunk)
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	// More members than are parsed ahead, then one larger than is read
	// ahead: one tar stream's parser is blocked handing over a member, the
	// other's waits for a direct member's data to be taken.
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for i := range tarAhead + 2 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprint("f", i), Size: 1}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("x"))
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "direct", Size: tarAheadSize + 1})
	tw.Write(make([]byte, tarAheadSize+1))
	tw.Close()
	if err := os.WriteFile(filepath.Join(dir, "many.tar"), archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ctx := WithMounts(context.Background(), []Mount{{GuestPath: "/", Root: root, ReadOnly: true}})
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	// A guest with one page of memory; the path "/big" at 16, the handle at 0.
	guest, err := r.InstantiateWithConfig(ctx, []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01"),
		wazero.NewModuleConfig().WithName("guest"))
	if err != nil {
		t.Fatal(err)
	}
	if !guest.Memory().Write(16, []byte("/big")) {
		t.Fatal("cannot write the path")
	}
	table := ctx.Value(streamsKey{}).(*streamTable)
	var opened []*stream
	for range 3 {
		stack := []uint64{16, 4, 0, ^uint64(0), streamNone, 0}
		errnoFunc(hostStreamOpen).goModuleFunc()(ctx, guest, stack)
		if stack[0] != 0 {
			t.Fatalf("stream_open: errno %d", stack[0])
		}
		h, _ := guest.Memory().ReadUint32Le(0)
		opened = append(opened, table.get(h))
	}
	if !guest.Memory().Write(32, []byte("/many.tar")) {
		t.Fatal("cannot write the path")
	}
	for i, nexts := range []int{1, tarAhead + 3} {
		stack := []uint64{32, 9, 0, ^uint64(0), streamNone, 0}
		errnoFunc(hostStreamOpen).goModuleFunc()(ctx, guest, stack)
		if stack[0] != 0 {
			t.Fatalf("stream_open: errno %d", stack[0])
		}
		h, _ := guest.Memory().ReadUint32Le(0)
		for range nexts {
			stack := []uint64{uint64(h), 1024, 4096, 8}
			errnoFunc(hostTarNext).goModuleFunc()(ctx, guest, stack)
			if stack[0] != 0 {
				t.Fatalf("tar stream %d: tar_next: errno %d", i, stack[0])
			}
		}
		opened = append(opened, table.get(h))
	}
	if name := opened[len(opened)-1].tar.cur.hdr.Name; name != "direct" {
		t.Fatalf("the second tar stream is at %q, want the direct member", name)
	}
	if err := guest.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(table.open); n != 0 {
		t.Errorf("%d streams still open after the module closed", n)
	}
	for i, s := range opened {
		select {
		case <-s.finished:
		default:
			t.Errorf("stream %d: its producer is still running", i)
		}
		if err := s.f.Close(); err == nil {
			t.Errorf("stream %d: its file was still open", i)
		}
		if s.tar != nil {
			select {
			case <-s.tar.parsed:
			default:
				t.Errorf("stream %d: its tar parser is still running", i)
			}
		}
	}
}

// FuzzStream feeds arbitrary bytes, a stage's "archive", to the host's
// decompressors in every kind: reading must end, with data or an error,
// never a panic in the host, and close must stop the producer.
func FuzzStream(f *testing.F) {
	for _, seed := range [][]byte{
		nil, []byte("plain"), {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{0xfd, '7', 'z', 'X', 'Z', 0}, {0x28, 0xb5, 0x2f, 0xfd, 0, 0}, []byte("BZh91AY&SY"),
	} {
		for kind := uint32(streamAuto); kind <= streamBzip2; kind++ {
			f.Add(seed, kind)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, kind uint32) {
		kind %= streamBzip2 + 1
		p := filepath.Join(dir, "in")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		s := openStream(file, 0, -1, kind)
		defer s.close()
		buf := make([]byte, 4096)
		total := 0
		for total < 64<<20 { // a bomb is cut short: it only costs time
			n, err := s.read(context.Background(), buf)
			if err != nil {
				if kind == streamNone {
					t.Fatalf("kind none failed: %v", err)
				}
				return
			}
			if n == 0 {
				if kind == streamNone && total != len(data) {
					t.Fatalf("kind none read %d of %d bytes", total, len(data))
				}
				return
			}
			total += n
		}
	})
}

// TestStreamErrorAfterEnd: a guest that reads a corrupt archive to its
// EBADMSG and asks stream_error at once must get the decompressor's
// message. The producer once closed chunks before finished, so a reader
// quick enough found the stream ended but "still running": an empty
// message, seen in CI. Many rounds give the old order chances to lose.
func TestStreamErrorAfterEnd(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.gz")
	if err := os.WriteFile(corrupt, []byte("\x1f\x8b\x08\x00not a deflate stream at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		f, err := os.Open(corrupt)
		if err != nil {
			t.Fatal(err)
		}
		s := openStream(f, 0, -1, streamAuto)
		buf := make([]byte, 64)
		var rerr error
		for rerr == nil {
			var n int
			n, rerr = s.read(t.Context(), buf)
			if n == 0 && rerr == nil {
				t.Fatal("the corrupt stream ended without an error")
			}
		}
		select {
		case <-s.finished:
			if s.err == nil {
				t.Fatalf("round %d: read failed with %v but the stream has no error", i, rerr)
			}
		default:
			t.Fatalf("round %d: read ended with %v before the producer finished: stream_error would say nothing", i, rerr)
		}
		s.close()
	}
}
