package debrepo

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestVerifyInReleaseGood(t *testing.T) {
	key := newKey(t, 0)
	text := releaseText("", map[string][]byte{"main/binary-amd64/Packages": []byte("x")})
	v, err := VerifyInRelease(clearsignText(t, key, text), openpgp.EntityList{key}, VerifyOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	r := v.Release
	if r.Suite != "stable" || r.Codename != "bookworm" || r.Date.Year() != 2024 {
		t.Errorf("fields: %+v", r)
	}
	if strings.Join(r.Architectures, ",") != "all,amd64,arm64" || strings.Join(r.Components, ",") != "main,contrib" {
		t.Errorf("arch/components: %v %v", r.Architectures, r.Components)
	}
	if h := r.SHA256["main/binary-amd64/Packages"]; h.Size != 1 || h.SHA256 != sha([]byte("x")) {
		t.Errorf("SHA256 list: %+v", r.SHA256)
	}
	if _, listed := r.SHA256["ignored"]; listed {
		t.Error("MD5Sum entries leaked into the SHA256 list")
	}
	if !strings.EqualFold(v.Signer, strings.ToUpper(hexFP(key))) {
		t.Errorf("signer %s", v.Signer)
	}
}

func hexFP(e *openpgp.Entity) string {
	const digits = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range e.PrimaryKey.Fingerprint {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

func TestVerifyInReleaseRefused(t *testing.T) {
	key := newKey(t, 0)
	other := newKey(t, 0)
	expiring := newKey(t, 600) // expired 50 minutes before testNow
	text := releaseText("", map[string][]byte{"main/binary-amd64/Packages": []byte("x")})
	good := clearsignText(t, key, text)

	tampered := bytes.Replace(good, []byte("Codename: bookworm"), []byte("Codename: bookwork"), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("tamper did not apply")
	}
	// Unsigned text after the signature: a reader that scanned the whole
	// file for fields would see this Valid-Until.
	trailing := append(append([]byte{}, good...), []byte("Suite: evil\n")...)
	leading := append([]byte("Suite: evil\n\n"), good...)

	cases := []struct {
		name    string
		data    []byte
		keyring openpgp.EntityList
		opts    VerifyOptions
		want    error
	}{
		{"tampered byte", tampered, openpgp.EntityList{key}, VerifyOptions{Now: testNow}, ErrBadSignature},
		{"wrong key", good, openpgp.EntityList{other}, VerifyOptions{Now: testNow}, ErrUnknownSigner},
		{"not signed", []byte(text), openpgp.EntityList{key}, VerifyOptions{Now: testNow}, ErrNotClearsigned},
		{"trailing data", trailing, openpgp.EntityList{key}, VerifyOptions{Now: testNow}, ErrOutsideSignature},
		{"leading data", leading, openpgp.EntityList{key}, VerifyOptions{Now: testNow}, ErrOutsideSignature},
		{"expired key", clearsignText(t, expiring, text), openpgp.EntityList{expiring}, VerifyOptions{Now: testNow}, ErrKeyExpired},
		{"sha1 signature", clearsignSHA1(t, key, text), openpgp.EntityList{key}, VerifyOptions{Now: testNow}, ErrWeakSignature},
		{"expired release", clearsignText(t, key, releaseText("Sun, 11 Aug 2024 09:27:16 UTC", map[string][]byte{"a": nil})),
			openpgp.EntityList{key}, VerifyOptions{Now: testNow}, ErrReleaseExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := VerifyInRelease(c.data, c.keyring, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v (accepted: %v), want %v", err, v != nil, c.want)
			}
		})
	}

	// The same expired Release is accepted only when the caller says so.
	exp := clearsignText(t, key, releaseText("Sun, 11 Aug 2024 09:27:16 UTC", map[string][]byte{"a": nil}))
	if _, err := VerifyInRelease(exp, openpgp.EntityList{key}, VerifyOptions{Now: testNow, AllowExpired: true}); err != nil {
		t.Fatalf("AllowExpired: %v", err)
	}
}

func TestParseReleaseRefusesBadSHA256(t *testing.T) {
	base := "Suite: stable\nDate: Sat, 10 Aug 2024 09:27:16 UTC\nSHA256:\n"
	cases := map[string]string{
		"escaping path":   " " + strings.Repeat("a", 64) + " 1 ../../etc/passwd\n",
		"absolute path":   " " + strings.Repeat("a", 64) + " 1 /etc/passwd\n",
		"short digest":    " abcd 1 main/Packages\n",
		"negative size":   " " + strings.Repeat("a", 64) + " -1 main/Packages\n",
		"listed twice":    " " + strings.Repeat("a", 64) + " 1 main/P\n " + strings.Repeat("b", 64) + " 2 main/P\n",
		"two paragraphs":  " " + strings.Repeat("a", 64) + " 1 main/P\n\nSuite: x\n",
		"duplicate field": " " + strings.Repeat("a", 64) + " 1 main/P\nSuite: evil\n",
	}
	for name, tail := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseRelease([]byte(base + tail)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzReadParagraphs(f *testing.F) {
	f.Add([]byte("A: b\n c\n\nD: e\n"))
	f.Add([]byte("# c\n A\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadParagraphs(bytes.NewReader(data), func(p *Paragraph) error {
			if len(p.Fields) == 0 {
				t.Fatal("empty paragraph reported")
			}
			seen := map[string]bool{}
			for _, fl := range p.Fields {
				k := strings.ToLower(fl.Name)
				if seen[k] || !validFieldName(fl.Name) {
					t.Fatalf("bad field %q", fl.Name)
				}
				seen[k] = true
			}
			return nil
		})
	})
}

// Debian signs each InRelease with several keys. One good signature by a
// keyring key is enough, as with apt; an expired or unknown co-signer does not
// refuse the file, but a co-signature by a keyring key that fails to verify
// does.
func TestVerifyInReleaseMultipleSignatures(t *testing.T) {
	good := newKey(t, 0)
	expired := newKey(t, 600)
	stranger := newKey(t, 0)
	text := releaseText("", map[string][]byte{"main/binary-amd64/Packages": []byte("x")})
	multi := func(keys ...*openpgp.Entity) []byte {
		var buf bytes.Buffer
		var priv []*packet.PrivateKey
		for _, k := range keys {
			priv = append(priv, k.PrivateKey)
		}
		w, err := clearsign.EncodeMulti(&buf, priv, &packet.Config{Time: func() time.Time { return testNow.Add(-time.Minute) }})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, text)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	both := multi(expired, good)
	cases := []struct {
		name    string
		data    []byte
		keyring openpgp.EntityList
		want    error // nil: accepted, signed by good
	}{
		// go-crypto alone checks only the first known issuer: this failed
		// with ErrKeyExpired before verifyAnySignature.
		{"expired first, good second", both, openpgp.EntityList{expired, good}, nil},
		{"stranger first", multi(stranger, good), openpgp.EntityList{good}, nil},
		{"only expired known", both, openpgp.EntityList{expired}, ErrKeyExpired},
		{"only strangers", both, openpgp.EntityList{stranger}, ErrUnknownSigner},
		{"tampered", bytes.Replace(both, []byte("Suite: stable"), []byte("Suite: stablE"), 1), openpgp.EntityList{expired, good}, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := VerifyInRelease(c.data, c.keyring, VerifyOptions{Now: testNow})
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if v.Signer != hexFP(good) {
					t.Errorf("signer %s, want %s", v.Signer, hexFP(good))
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestSplitPacketsRefusesMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":              {},
		"not a packet":       {0x00, 0x01},
		"overlong":           {0xc2, 0x05, 0x01},
		"overlong two-octet": {0xc2, 0xc0, 0x00},
		"partial":            {0xc2, 0xe1, 0x00},
		"indeterminate":      {0x8b, 0x00},
	} {
		if _, err := splitPackets(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	got, err := splitPackets([]byte{0xc2, 0x01, 0xaa, 0x88, 0x02, 0xbb, 0xcc, 0xc2, 0x00})
	if err != nil || len(got) != 3 || len(got[1]) != 4 {
		t.Fatalf("got %d packets, %v", len(got), err)
	}
}
