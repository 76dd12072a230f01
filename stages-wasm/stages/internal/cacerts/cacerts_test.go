package cacerts

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const hostCerts = "/etc/ssl/certs"

// hostFiles reads the .pem links of the build host's /etc/ssl/certs, which
// update-ca-certificates made; tests skip without them.
func hostFiles(t *testing.T) ([]File, map[string]string) {
	t.Helper()
	ents, err := os.ReadDir(hostCerts)
	if err != nil || len(ents) == 0 {
		t.Skip("needs the build host's /etc/ssl/certs (ca-certificates): ", err)
	}
	hashRE := regexp.MustCompile(`^[0-9a-f]{8}\.[0-9]+$`)
	var files []File
	links := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(hostCerts, e.Name())
		if hashRE.MatchString(e.Name()) {
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			links[e.Name()] = target
			continue
		}
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Name: e.Name(), Data: b})
	}
	return files, links
}

func TestHashLinksMatchHost(t *testing.T) {
	files, want := hostFiles(t)
	got, err := HashLinks(files)
	if err != nil {
		t.Fatal(err)
	}
	gotMap := map[string]string{}
	for _, l := range got {
		gotMap[l.Name] = l.Target
	}
	if len(gotMap) != len(want) {
		t.Errorf("%d hash links, host has %d", len(gotMap), len(want))
	}
	for n, target := range want {
		if gotMap[n] != target {
			t.Errorf("%s -> %q, host has %q", n, gotMap[n], target)
		}
	}
}

func TestBundleAndConfMatchHost(t *testing.T) {
	conf, err := os.ReadFile("/etc/ca-certificates.conf")
	if err != nil {
		t.Skip("needs the build host's /etc/ca-certificates.conf: ", err)
	}
	want, err := os.ReadFile(filepath.Join(hostCerts, "ca-certificates.crt"))
	if err != nil {
		t.Skip("needs the build host's bundle: ", err)
	}
	var enabled []string
	var parts [][]byte
	for _, l := range strings.Split(string(conf), "\n") {
		if l == "" || l[0] == '#' || l[0] == '!' {
			continue
		}
		enabled = append(enabled, l)
		b, err := os.ReadFile(filepath.Join("/usr/share/ca-certificates", l))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	local, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	slices.Sort(local)
	for _, p := range local {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	if got := Bundle(parts); !bytes.Equal(got, want) {
		t.Errorf("bundle of %d certificates differs from the host's (%d bytes, want %d)", len(parts), len(got), len(want))
	}
	if !bytes.Contains(conf, []byte("\n!")) {
		if got := Conf(enabled); !bytes.Equal(got, conf) {
			t.Errorf("ca-certificates.conf differs from the host's:\n%s", got)
		}
	}
}

// TestSubjectHashOpenSSL checks names that exercise the canonical form
// (case, white space, string types) against openssl x509 -subject_hash.
func TestSubjectHashOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("needs openssl: ", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	names := []pkix.Name{
		{CommonName: "  Example   ROOT  CA ", Organization: []string{"ACME\tInc."}, Country: []string{"DE"}},
		{CommonName: "Zürich Ünïcode Root", Organization: []string{"Straße"}},
		{ExtraNames: []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 3}, Value: "MiXeD  Case"}, {Type: []int{1, 2, 840, 113549, 1, 9, 1}, Value: "Root@Example.COM"}}},
		{},
	}
	for i, n := range names {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: n, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(openssl, "x509", "-noout", "-subject_hash")
		cmd.Stdin = bytes.NewReader(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		got, err := SubjectHash(der)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%v: hash %s, openssl %s", n, got, want)
		}
	}
}

func TestPEMName(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/share/ca-certificates/mozilla/ACCVRAIZ1.crt":                                "ACCVRAIZ1.pem",
		"/usr/share/ca-certificates/mozilla/NetLock_Arany_=Class_Gold=_Főtanúsítvány.crt": "NetLock_Arany_=Class_Gold=_Főtanúsítvány.pem",
		"/x/A b (c), d.crt": "A_b_=c=__d.pem",
	} {
		if got := PEMName(in); got != want {
			t.Errorf("PEMName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzCanonicalName(f *testing.F) {
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, 'A', ' '})
	f.Add([]byte{0x30, 0x0c, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := CanonicalName(b)
		if err != nil {
			return
		}
		// The canonical form is a fixed point.
		again, err := CanonicalName(tlv(0x10, true, out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %x -> %x -> %x (%v)", b, out, again, err)
		}
	})
}
