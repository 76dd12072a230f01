// Package debrepo reads a Debian archive's metadata and checks every step of
// its trust chain before anything is parsed: keyring -> InRelease signature ->
// Release SHA256 list -> Packages index -> .deb sha256 (the last check belongs
// to whoever downloads the .deb; the Package records carry the digest).
//
// The package does no networking itself: callers pass a Fetcher, so the same
// code runs on recorded fixtures in tests and on a mirror in the lock command.
package debrepo

import "errors"

// Sentinel errors callers branch on. Every error the package returns wraps one
// of these with the file and field it concerns.
var (
	// ErrNotClearsigned: the InRelease is not an OpenPGP clear-signed message.
	ErrNotClearsigned = errors.New("not an OpenPGP clear-signed message")
	// ErrOutsideSignature: bytes before or after the signed block, which a
	// naive reader could take for signed metadata.
	ErrOutsideSignature = errors.New("data outside the signed part")
	// ErrBadSignature: the signature does not verify over the signed text.
	ErrBadSignature = errors.New("bad signature")
	// ErrWeakSignature: the signature verifies but uses a broken hash (SHA-1).
	ErrWeakSignature = errors.New("signature uses a broken hash")
	// ErrUnknownSigner: no signature was made by a key in the keyring.
	ErrUnknownSigner = errors.New("signed by no key in the keyring")
	// ErrKeyExpired: the signing key (or its binding) is expired or revoked.
	ErrKeyExpired = errors.New("signing key expired or revoked")
	// ErrReleaseExpired: the Release's Valid-Until is in the past.
	ErrReleaseExpired = errors.New("release expired (Valid-Until passed)")
	// ErrMalformed: a control file, Release or Packages field does not parse.
	ErrMalformed = errors.New("malformed metadata")
	// ErrNotListed: a file was asked for that the Release's SHA256 list lacks.
	ErrNotListed = errors.New("file not listed in Release SHA256")
	// ErrSizeMismatch: a fetched file's size differs from the Release's.
	ErrSizeMismatch = errors.New("size differs from Release")
	// ErrDigestMismatch: a fetched file's sha256 differs from the Release's.
	ErrDigestMismatch = errors.New("sha256 differs from Release")
	// ErrNotFound is what a Fetcher returns for a file the mirror lacks, so
	// FetchPackages can try the next compression.
	ErrNotFound = errors.New("not found on mirror")
)
