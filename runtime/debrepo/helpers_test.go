package debrepo

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// testNow is the clock every fixture is checked against.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// newKey makes a throwaway signing key, created an hour before testNow; a
// non-zero lifetime makes it expire that many seconds after creation.
func newKey(t *testing.T, lifetime uint32) *openpgp.Entity {
	t.Helper()
	created := testNow.Add(-time.Hour)
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Curve:           packet.Curve25519,
		KeyLifetimeSecs: lifetime,
		Time:            func() time.Time { return created },
	}
	e, err := openpgp.NewEntity("kiln test archive key", "", "test@example.invalid", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func clearsignText(t *testing.T, key *openpgp.Entity, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := clearsign.Encode(&buf, key.PrivateKey, &packet.Config{Time: func() time.Time { return testNow.Add(-time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, text); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// releaseText writes a Release listing files (path -> content).
func releaseText(validUntil string, files map[string][]byte) string {
	var b strings.Builder
	b.WriteString("Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\n")
	b.WriteString("Date: Sat, 10 Aug 2024 09:27:16 UTC\n")
	if validUntil != "" {
		b.WriteString("Valid-Until: " + validUntil + "\n")
	}
	b.WriteString("Architectures: all amd64 arm64\nComponents: main contrib\nDescription: test\n")
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("MD5Sum:\n 00000000000000000000000000000000 0 ignored\nSHA256:\n")
	for _, n := range names {
		fmt.Fprintf(&b, " %s %8d %s\n", sha(files[n]), len(files[n]), n)
	}
	return b.String()
}

// clearsignSHA1 signs text with SHA-1 by hand: go-crypto's encoder refuses to
// write SHA-1, but a hostile or ancient archive could still serve it.
func clearsignSHA1(t *testing.T, key *openpgp.Entity, text string) []byte {
	t.Helper()
	// The bytes a clear signature covers (CRLF lines, no final newline) are
	// what Decode reports for any clear-signed copy of the same text.
	block, _ := clearsign.Decode(clearsignText(t, key, text))
	if block == nil {
		t.Fatal("decode of own clear-signed text failed")
	}
	created := testNow.Add(-time.Minute)
	sig := &packet.Signature{
		Version:      4,
		SigType:      packet.SigTypeText,
		PubKeyAlgo:   key.PrivateKey.PubKeyAlgo,
		Hash:         crypto.SHA1,
		CreationTime: created,
		IssuerKeyId:  &key.PrivateKey.KeyId,
	}
	noNotation := false
	cfg := &packet.Config{Time: func() time.Time { return created }, NonDeterministicSignaturesViaNotation: &noNotation}
	h, err := sig.PrepareSign(cfg)
	if err != nil {
		t.Fatal(err)
	}
	openpgp.NewCanonicalTextHash(h).Write(block.Bytes)
	if err := sig.Sign(h, key.PrivateKey, cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA1\n\n")
	// The encoder ends the text with a newline of its own, which the armor
	// takes: the text's last newline is then signed.
	buf.WriteString(text + "\n")
	aw, err := armor.Encode(&buf, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	buf.WriteString("\n")
	return buf.Bytes()
}
