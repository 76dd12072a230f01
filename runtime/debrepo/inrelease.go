package debrepo

import (
	"bytes"
	"crypto"
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
	// Not block.VerifySignature: it hides the signature packet, whose hash
	// must be checked below.
	sig, signer, err := openpgp.VerifyDetachedSignature(keyring, bytes.NewReader(block.Bytes), block.ArmoredSignature.Body, cfg)
	// go-crypto returns the signer together with an expiry error, so err
	// alone decides.
	if err != nil {
		switch {
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			return nil, fmt.Errorf("InRelease: %w: %w", ErrUnknownSigner, err)
		case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrKeyRevoked),
			errors.Is(err, pgperrors.ErrSignatureExpired):
			return nil, fmt.Errorf("InRelease: %w: %w", ErrKeyExpired, err)
		default:
			return nil, fmt.Errorf("InRelease: %w: %w", ErrBadSignature, err)
		}
	}
	if sig == nil || signer == nil || signer.PrimaryKey == nil {
		return nil, fmt.Errorf("InRelease: no signer reported: %w", ErrBadSignature)
	}
	// go-crypto's v1 API accepts SHA-1 message signatures (only its v2 API
	// applies RejectMessageHashAlgorithms); SHA-1 collisions are practical,
	// and apt has refused SHA-1 InRelease signatures since 2.x.
	if weakHash[sig.Hash] {
		return nil, fmt.Errorf("InRelease: signature uses %v: %w", sig.Hash, ErrWeakSignature)
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
