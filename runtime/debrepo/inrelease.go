package debrepo

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ReadKeyring reads an OpenPGP keyring, binary (as Debian ships
// /usr/share/keyrings/*.gpg) or ASCII-armored.
func ReadKeyring(r io.Reader) (openpgp.EntityList, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var kr openpgp.EntityList
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
		kr, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		kr, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if len(kr) == 0 {
		return nil, fmt.Errorf("keyring: no keys")
	}
	return kr, nil
}

// ReadKeyringFile reads a keyring file such as
// /usr/share/keyrings/debian-archive-keyring.gpg.
func ReadKeyringFile(name string) (openpgp.EntityList, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	kr, err := ReadKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return kr, nil
}

var weakHash = map[crypto.Hash]bool{crypto.MD5: true, crypto.SHA1: true, crypto.RIPEMD160: true}

// VerifyOptions tunes VerifyInRelease.
type VerifyOptions struct {
	// Now is the time keys, signatures and Valid-Until are checked against;
	// zero means time.Now(). A lock made from a recorded InRelease passes the
	// time it was recorded.
	Now time.Time
	// AllowExpired accepts a Release whose Valid-Until has passed (snapshot
	// mirrors). It never accepts an expired key or signature.
	AllowExpired bool
}

// Verified is an InRelease whose signature checked out.
type Verified struct {
	Release *Release
	// Signed is the exact signed text the Release was parsed from.
	Signed []byte
	// Signer is the fingerprint (hex) of the key that made the good signature.
	Signer string
}

// VerifyInRelease checks the clear-signed InRelease data against keyring and
// parses the Release inside. Only the signed text is parsed: any byte before
// the BEGIN line or after the signature is refused rather than ignored, so no
// unsigned field can reach the caller.
func VerifyInRelease(data []byte, keyring openpgp.KeyRing, opts VerifyOptions) (*Verified, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		if bytes.Contains(data, []byte("\n-----BEGIN PGP SIGNED MESSAGE-----")) {
			return nil, fmt.Errorf("InRelease: bytes before the signed message: %w", ErrOutsideSignature)
		}
		return nil, fmt.Errorf("InRelease: %w", ErrNotClearsigned)
	}
	block, rest := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("InRelease: %w", ErrNotClearsigned)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("InRelease: %d bytes after the signature: %w", len(rest), ErrOutsideSignature)
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	_, signer, err := verifyAnySignature(block, keyring, cfg)
	if err != nil {
		return nil, fmt.Errorf("InRelease: %w", err)
	}
	rel, err := ParseRelease(block.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("InRelease: %w", err)
	}
	if err := rel.CheckValid(now, opts.AllowExpired); err != nil {
		return nil, fmt.Errorf("InRelease: %w", err)
	}
	return &Verified{
		Release: rel,
		Signed:  block.Plaintext,
		Signer:  fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint),
	}, nil
}

// verifyAnySignature accepts the InRelease when one of its signatures is a
// good one by a keyring key, as apt does: Debian signs each InRelease with
// several keys, and during a key rotation one of them may be expired or absent
// from the caller's keyring. go-crypto checks only the first signature whose
// issuer it knows, so a known-but-expired key listed first would refuse a
// valid file; each signature packet is therefore checked on its own. A
// signature by a keyring key that does not verify refuses the file outright:
// it means the text was changed, whatever the other signatures say.
func verifyAnySignature(block *clearsign.Block, keyring openpgp.KeyRing, cfg *packet.Config) (*packet.Signature, *openpgp.Entity, error) {
	raw, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	packets, err := splitPackets(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	// Without a good signature, report the most telling failure.
	var weak, expired, unknown error
	var goodSig *packet.Signature
	var goodSigner *openpgp.Entity
	for _, p := range packets {
		// go-crypto returns the signer together with an expiry error, so
		// err alone decides.
		sig, signer, err := openpgp.VerifyDetachedSignature(keyring, bytes.NewReader(block.Bytes), bytes.NewReader(p), cfg)
		switch {
		case err == nil && (sig == nil || signer == nil || signer.PrimaryKey == nil):
			return nil, nil, fmt.Errorf("no signer reported: %w", ErrBadSignature)
		case err == nil && weakHash[sig.Hash]:
			// go-crypto's v1 API accepts SHA-1 message signatures (only its
			// v2 API applies RejectMessageHashAlgorithms); SHA-1 collisions
			// are practical, and apt refuses SHA-1 InRelease signatures.
			weak = fmt.Errorf("signature uses %v: %w", sig.Hash, ErrWeakSignature)
		case err == nil:
			if goodSig == nil {
				goodSig, goodSigner = sig, signer
			}
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			unknown = fmt.Errorf("%w: %w", ErrUnknownSigner, err)
		case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrKeyRevoked),
			errors.Is(err, pgperrors.ErrSignatureExpired):
			expired = fmt.Errorf("%w: %w", ErrKeyExpired, err)
		default:
			return nil, nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
	}
	switch {
	case goodSig != nil:
		return goodSig, goodSigner, nil
	case weak != nil:
		return nil, nil, weak
	case expired != nil:
		return nil, nil, expired
	case unknown != nil:
		return nil, nil, unknown
	}
	return nil, nil, fmt.Errorf("no signature: %w", ErrBadSignature)
}

// splitPackets cuts a run of OpenPGP packets (RFC 9580 section 4.2) into one
// slice per packet, so each signature can be verified alone. Partial and
// indeterminate lengths are refused: a signature packet never has them.
func splitPackets(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if b[0]&0x80 == 0 || len(b) < 2 {
			return nil, errors.New("not an OpenPGP packet")
		}
		var hdr int
		var n uint64
		if b[0]&0x40 != 0 { // new format
			switch l0 := b[1]; {
			case l0 < 192:
				hdr, n = 2, uint64(l0)
			case l0 < 224:
				if len(b) < 3 {
					return nil, errors.New("short packet header")
				}
				hdr, n = 3, uint64(l0-192)<<8+uint64(b[2])+192
			case l0 == 255:
				if len(b) < 6 {
					return nil, errors.New("short packet header")
				}
				hdr, n = 6, uint64(binary.BigEndian.Uint32(b[2:6]))
			default:
				return nil, errors.New("partial-length packet in a signature")
			}
		} else { // old format
			switch b[0] & 3 {
			case 0:
				hdr, n = 2, uint64(b[1])
			case 1:
				if len(b) < 3 {
					return nil, errors.New("short packet header")
				}
				hdr, n = 3, uint64(binary.BigEndian.Uint16(b[1:3]))
			case 2:
				if len(b) < 5 {
					return nil, errors.New("short packet header")
				}
				hdr, n = 5, uint64(binary.BigEndian.Uint32(b[1:5]))
			default:
				return nil, errors.New("indeterminate-length packet in a signature")
			}
		}
		if n > uint64(len(b)-hdr) {
			return nil, errors.New("packet longer than the signature block")
		}
		end := hdr + int(n)
		out = append(out, b[:end:end])
		b = b[end:]
	}
	if len(out) == 0 {
		return nil, errors.New("empty signature block")
	}
	return out, nil
}
