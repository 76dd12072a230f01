package tarrec

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// want is what Decode should give for h: the fields the record carries,
// and of the PAX records only the xattrs.
func want(h *tar.Header) *tar.Header {
	w := &tar.Header{
		Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size,
		Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, ModTime: time.Unix(h.ModTime.Unix(), int64(h.ModTime.Nanosecond())),
		Devmajor: h.Devmajor, Devminor: h.Devminor,
	}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, XattrPrefix) && k != XattrPrefix {
			if w.PAXRecords == nil {
				w.PAXRecords = map[string]string{}
			}
			w.PAXRecords[k] = v
		}
	}
	return w
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    tar.Header
	}{
		{"regular", tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Size: 1234, Mode: 0o644, ModTime: time.Unix(1700000000, 0)}},
		{"setuid owner", tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/su", Mode: 0o4755, Uid: 0, Gid: 42, ModTime: time.Unix(1, 999999999)}},
		{"before 1970", tar.Header{Typeflag: tar.TypeDir, Name: "old/", Mode: 0o755, ModTime: time.Unix(-86401, 5)}},
		{"symlink", tar.Header{Typeflag: tar.TypeSymlink, Name: "bin", Linkname: "usr/bin", Mode: 0o777}},
		{"hard link", tar.Header{Typeflag: tar.TypeLink, Name: "a/b", Linkname: "a/c"}},
		{"device", tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{"large ids", tar.Header{Typeflag: tar.TypeReg, Name: "x", Uid: 1 << 31, Gid: 4294967294}},
		{"non-UTF-8 name", tar.Header{Typeflag: tar.TypeReg, Name: "caf\xe9\x00z"}},
		{"xattrs sorted, others dropped", tar.Header{Typeflag: tar.TypeReg, Name: "ping", PAXRecords: map[string]string{
			XattrPrefix + "user.b": "2", XattrPrefix + "security.capability": "\x01\x00\x00\x02", XattrPrefix + "user.a": "",
			"GNU.sparse.size": "10", "mtime": "1.5", XattrPrefix: "nameless",
		}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Append([]byte("keep"), &tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if string(rec[:4]) != "keep" {
				t.Fatalf("Append overwrote what b held")
			}
			got, err := Decode(rec[4:])
			if err != nil {
				t.Fatal(err)
			}
			if w := want(&tt.h); !reflect.DeepEqual(got, w) {
				t.Errorf("Decode(Append(h)) = %+v, want %+v", got, w)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	h := &tar.Header{Name: "x", PAXRecords: map[string]string{XattrPrefix + "user.big": strings.Repeat("v", Max)}}
	if _, err := Append(nil, h); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of a record over Max: %v, want ErrTooLarge", err)
	}
}

func TestMalformed(t *testing.T) {
	good, err := Append(nil, &tar.Header{Name: "n", Linkname: "l", PAXRecords: map[string]string{XattrPrefix + "user.a": "1", XattrPrefix + "user.b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	swapped := bytes.Clone(good)
	// The two xattrs, each 8+6+1 bytes, swapped: unsorted.
	x := swapped[Fixed+2:]
	copy(x, append(bytes.Clone(good[Fixed+2+15:]), good[Fixed+2:Fixed+2+15]...))
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"short", good[:Fixed-1]},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"padding", func() []byte { b := bytes.Clone(good); b[66] = 1; return b }()},
		{"nsec", func() []byte { b := bytes.Clone(good); b[40+3] = 0xff; return b }()},
		{"name past end", func() []byte { b := bytes.Clone(good); b[68] = 0xff; return b }()},
		{"xattr count", func() []byte { b := bytes.Clone(good); b[76+3] = 0x10; return b }()},
		{"unsorted", swapped},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.b); !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode: %v, want ErrMalformed", err)
			}
		})
	}
}

// FuzzDecode: any bytes either fail to decode or decode to a header whose
// record is those very bytes.
func FuzzDecode(f *testing.F) {
	rec, _ := Append(nil, &tar.Header{Typeflag: tar.TypeReg, Name: "a", Linkname: "b", PAXRecords: map[string]string{XattrPrefix + "user.x": "y"}})
	f.Add(rec)
	f.Add(make([]byte, Fixed))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Append(nil, h)
		if err != nil {
			t.Fatalf("Append of a decoded header: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Append(Decode(b)) != b:\n%x\n%x", again, b)
		}
	})
}

// FuzzArchive: whatever archive/tar reads from arbitrary bytes, as the host
// reads a stage's archive, comes through a record unchanged.
func FuzzArchive(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "f", Size: 3, Mode: 0o644, Format: tar.FormatPAX,
			PAXRecords: map[string]string{XattrPrefix + "user.k": "v"}},
		{Typeflag: tar.TypeSymlink, Name: strings.Repeat("long/", 40), Linkname: "t", Format: tar.FormatGNU},
	} {
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("abc"))
		}
	}
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if err != nil {
				return
			}
			rec, err := Append(nil, h)
			if errors.Is(err, ErrTooLarge) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(rec)
			if err != nil {
				t.Fatalf("Decode(Append(h)): %v", err)
			}
			if w := want(h); !reflect.DeepEqual(got, w) {
				t.Fatalf("got %+v, want %+v", got, w)
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return
			}
		}
	})
}
