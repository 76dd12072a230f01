package debrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// LockVersion is the lock format this package writes and reads.
const LockVersion = 1

// ErrLock: a lock file is malformed or holds a value that fails validation.
var ErrLock = errors.New("invalid lock file")

// Lock is a resolved package set and what it was resolved from. It names
// no mirror: each .deb is pinned by its sha256 and found by its pool path
// under whichever mirror the user points kiln at.
type Lock struct {
	LockVersion int        `json:"lockVersion"`
	Source      LockSource `json:"source"`
	// Packages in install order.
	Packages []LockedPackage `json:"packages"`
}

// LockSource records the inputs of a resolution.
type LockSource struct {
	Suite        string   `json:"suite"`    // as asked: the dists/<suite>/ directory
	Codename     string   `json:"codename"` // the Release's Codename
	Components   []string `json:"components"`
	Architecture string   `json:"architecture"`
	Request      []string `json:"request"` // canonical requests, sorted
	Required     bool     `json:"required"`
	Essential    bool     `json:"essential"`
	InRelease    LockRel  `json:"inRelease"`
}

// LockRel identifies the verified InRelease a lock was made from.
type LockRel struct {
	SHA256  string   `json:"sha256"`  // of the whole InRelease file as fetched
	Date    string   `json:"date"`    // the Release's Date, RFC 3339 UTC
	Signers []string `json:"signers"` // fingerprints of the keys whose signatures verified
}

// LockedPackage is one .deb of the lock.
type LockedPackage struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	Filename     string `json:"filename"` // pool path relative to the archive root
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
}

var (
	suiteRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	archRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	hex64RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fprRE      = regexp.MustCompile(`^([0-9A-F]{40}|[0-9A-F]{64})$`)
	poolPathRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._~/-]*$`)
)

// ValidSuite reports whether s can name a suite or a component: it becomes
// part of a URL path, so it is held to a closed pattern.
func ValidSuite(s string) bool { return suiteRE.MatchString(s) }

// ValidArch reports whether s is a plausible Debian architecture name.
func ValidArch(s string) bool { return archRE.MatchString(s) }

// Validate checks every field of the lock: it is untrusted input whose
// filenames become URLs and whose digests name files in the store.
func (l *Lock) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrLock)
	}
	if l.LockVersion != LockVersion {
		return bad("lockVersion %d, this kiln reads %d", l.LockVersion, LockVersion)
	}
	s := l.Source
	if !ValidSuite(s.Suite) {
		return bad("source.suite %q", s.Suite)
	}
	if s.Codename != "" && !ValidSuite(s.Codename) {
		return bad("source.codename %q", s.Codename)
	}
	if len(s.Components) == 0 {
		return bad("source.components is empty")
	}
	for i, c := range s.Components {
		if !ValidSuite(c) {
			return bad("source.components[%d] %q", i, c)
		}
	}
	if !ValidArch(s.Architecture) || s.Architecture == "all" {
		return bad("source.architecture %q", s.Architecture)
	}
	for i, q := range s.Request {
		r, err := ParseRequest(q)
		if err != nil {
			return bad("source.request[%d]: %v", i, err)
		}
		if r.String() != q {
			return bad("source.request[%d] %q is not canonical (%q)", i, q, r.String())
		}
	}
	if !slices.IsSorted(s.Request) {
		return bad("source.request is not sorted")
	}
	if len(s.Request) == 0 && !s.Required && !s.Essential {
		return bad("source: nothing was requested")
	}
	if !hex64RE.MatchString(s.InRelease.SHA256) {
		return bad("source.inRelease.sha256 %q is not 64 lower-case hex digits", s.InRelease.SHA256)
	}
	if _, err := time.Parse(time.RFC3339, s.InRelease.Date); err != nil {
		return bad("source.inRelease.date %q is not RFC 3339", s.InRelease.Date)
	}
	if len(s.InRelease.Signers) == 0 {
		return bad("source.inRelease.signers is empty")
	}
	for i, f := range s.InRelease.Signers {
		if !fprRE.MatchString(f) {
			return bad("source.inRelease.signers[%d] %q is not an upper-case hex fingerprint", i, f)
		}
	}
	if len(l.Packages) == 0 {
		return bad("no packages")
	}
	seen := map[string]bool{}
	for i, p := range l.Packages {
		at := fmt.Sprintf("packages[%d]", i)
		if !validPackageName(p.Name) {
			return bad("%s.name %q", at, p.Name)
		}
		if seen[p.Name] {
			return bad("%s: %s listed twice", at, p.Name)
		}
		seen[p.Name] = true
		if _, err := ParseVersion(p.Version); err != nil || strings.ContainsAny(p.Version, " \t\n/") {
			return bad("%s (%s): version %q", at, p.Name, p.Version)
		}
		if p.Architecture != s.Architecture && p.Architecture != "all" {
			return bad("%s (%s): architecture %q, want %s or all", at, p.Name, p.Architecture, s.Architecture)
		}
		if len(p.Filename) > 1024 || !cleanRelPath(p.Filename) || !poolPathRE.MatchString(p.Filename) || !strings.HasSuffix(p.Filename, ".deb") {
			return bad("%s (%s): filename %q is not a clean relative .deb path", at, p.Name, p.Filename)
		}
		if p.Size <= 0 {
			return bad("%s (%s): size %d", at, p.Name, p.Size)
		}
		if !hex64RE.MatchString(p.SHA256) {
			return bad("%s (%s): sha256 %q is not 64 lower-case hex digits", at, p.Name, p.SHA256)
		}
	}
	return nil
}

// maxLockSize bounds what ReadLock reads: Debian's whole main has ~64k
// packages, a lock of all of them is under 20 MiB.
const maxLockSize = 64 << 20

// ParseLock reads a lock strictly: unknown fields, trailing data and any
// value Validate refuses are errors.
func ParseLock(data []byte) (*Lock, error) {
	if len(data) > maxLockSize {
		return nil, fmt.Errorf("larger than %d MiB: %w", maxLockSize>>20, ErrLock)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLock, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the lock object: %w", ErrLock)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

// ReadLock reads and validates the lock file name.
func ReadLock(name string) (*Lock, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLockSize+1))
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	l, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return l, nil
}

// Marshal returns the lock as indented JSON with a final newline: the same
// lock always gives the same bytes.
func (l *Lock) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteLock writes the lock to name atomically: a temporary file in the
// same directory, synced, then renamed, so an error or a crash never leaves
// a half-written lock under the name.
func WriteLock(name string, l *Lock) error {
	data, err := l.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer os.Remove(tmp.Name()) // harmless after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("lock %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("lock %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("lock %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// ArchiveRequest is everything a lock is resolved from.
type ArchiveRequest struct {
	Suite        string
	Components   []string
	Architecture string
	Packages     []Request
	Required     bool
	Essential    bool
	Keyring      openpgp.KeyRing
	Verify       VerifyOptions
	// Fetch reads files under dists/<Suite>/: "InRelease" first, then the
	// Packages indexes the Release lists.
	Fetch Fetcher
	// Cache, when set, is a directory where indexes are kept by the sha256
	// the verified Release lists (Cache/sha256/<hex>), so resolving again
	// against the same InRelease fetches nothing but the InRelease. A
	// cached file is checked like a download; a damaged one is fetched
	// again.
	Cache string
}

// cached wraps fetch so that files the Release lists are read from and
// written to dir by their sha256. Only a file that matched the Release is
// written, through a temporary file and a rename.
func cached(dir string, rel *Release, fetch Fetcher) Fetcher {
	return func(ctx context.Context, name string) (io.ReadCloser, error) {
		want, listed := rel.SHA256[name]
		if !listed || dir == "" {
			return fetch(ctx, name)
		}
		path := filepath.Join(dir, "sha256", want.SHA256)
		if data, err := os.ReadFile(path); err == nil && checkFile(name, data, want) == nil {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
		rc, err := fetch(ctx, name)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		data, err := readAllCtx(ctx, io.LimitReader(rc, want.Size+1))
		if err != nil {
			return nil, err
		}
		if checkFile(name, data, want) == nil {
			// A cache that cannot be written only costs a download next time.
			_ = writeCacheFile(path, data)
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}

func writeCacheFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// maxInRelease bounds the InRelease read: Debian's is under 200 KiB.
const maxInRelease = 16 << 20

// ResolveArchive fetches and verifies the suite's InRelease against the
// keyring, fetches and verifies each component's Packages index for the
// architecture, resolves the request and returns the lock. Nothing is
// resolved from a file that failed a check.
func ResolveArchive(ctx context.Context, req ArchiveRequest) (*Lock, error) {
	if !ValidSuite(req.Suite) {
		return nil, fmt.Errorf("suite %q: %w", req.Suite, ErrMalformed)
	}
	if !ValidArch(req.Architecture) || req.Architecture == "all" {
		return nil, fmt.Errorf("architecture %q: %w", req.Architecture, ErrMalformed)
	}
	if len(req.Components) == 0 {
		return nil, fmt.Errorf("no component: %w", ErrMalformed)
	}
	for _, c := range req.Components {
		if !ValidSuite(c) {
			return nil, fmt.Errorf("component %q: %w", c, ErrMalformed)
		}
	}
	if len(req.Packages) == 0 && !req.Required && !req.Essential {
		return nil, fmt.Errorf("nothing requested: name packages or ask for the required or essential set: %w", ErrMalformed)
	}
	rc, err := req.Fetch(ctx, "InRelease")
	if err != nil {
		return nil, fmt.Errorf("fetch InRelease: %w", err)
	}
	data, err := readAllCtx(ctx, io.LimitReader(rc, maxInRelease+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("fetch InRelease: %w", err)
	}
	if len(data) > maxInRelease {
		return nil, fmt.Errorf("InRelease: larger than %d MiB: %w", maxInRelease>>20, ErrMalformed)
	}
	v, err := VerifyInRelease(data, req.Keyring, req.Verify)
	if err != nil {
		return nil, err
	}
	rel := v.Release
	if len(rel.Architectures) > 0 && !slices.Contains(rel.Architectures, req.Architecture) {
		return nil, fmt.Errorf("InRelease of %s lists architectures %s, not %s: %w", req.Suite, strings.Join(rel.Architectures, " "), req.Architecture, ErrNotListed)
	}
	var all []Package
	for _, c := range req.Components {
		if len(rel.Components) > 0 && !slices.Contains(rel.Components, c) {
			return nil, fmt.Errorf("InRelease of %s lists components %s, not %s: %w", req.Suite, strings.Join(rel.Components, " "), c, ErrNotListed)
		}
		pkgs, err := FetchPackages(ctx, rel, cached(req.Cache, rel, req.Fetch), c, req.Architecture)
		if err != nil {
			return nil, err
		}
		all = append(all, pkgs...)
	}
	res, err := Resolve(all, req.Packages, ResolveOptions{Architecture: req.Architecture, Required: req.Required, Essential: req.Essential})
	if err != nil {
		return nil, fmt.Errorf("resolve against %s %s: %w", req.Suite, rel.Date.Format(time.RFC3339), err)
	}
	sum := sha256.Sum256(data)
	l := &Lock{
		LockVersion: LockVersion,
		Source: LockSource{
			Suite:        req.Suite,
			Codename:     rel.Codename,
			Components:   slices.Clone(req.Components),
			Architecture: req.Architecture,
			Request:      []string{},
			Required:     req.Required,
			Essential:    req.Essential,
			InRelease: LockRel{
				SHA256:  hex.EncodeToString(sum[:]),
				Date:    rel.Date.UTC().Format(time.RFC3339),
				Signers: []string{v.Signer},
			},
		},
	}
	for _, q := range req.Packages {
		l.Source.Request = append(l.Source.Request, q.String())
	}
	slices.Sort(l.Source.Request)
	l.Source.Request = slices.Compact(l.Source.Request)
	for _, p := range res.Packages {
		l.Packages = append(l.Packages, LockedPackage{
			Name: p.Name, Version: p.Version.String(), Architecture: p.Architecture,
			Filename: p.Filename, Size: p.Size, SHA256: p.SHA256,
		})
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("the resolved set does not make a valid lock: %w", err)
	}
	return l, nil
}
