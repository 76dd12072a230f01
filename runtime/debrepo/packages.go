package debrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// Fetcher returns the file at path, relative to the suite's dists/<suite>/
// directory (e.g. "main/binary-amd64/Packages.xz"). It returns an error
// wrapping ErrNotFound when the mirror lacks the file. The package never
// trusts what a Fetcher returns until it matched the Release.
type Fetcher func(ctx context.Context, path string) (io.ReadCloser, error)

// FetchVerified fetches a file listed in the Release and checks its size and
// sha256 before returning its bytes. It reads at most the listed size plus
// one byte, so a hostile mirror cannot make it read without end.
func FetchVerified(ctx context.Context, rel *Release, fetch Fetcher, name string) ([]byte, error) {
	want, ok := rel.SHA256[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNotListed)
	}
	rc, err := fetch(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	defer rc.Close()
	data, err := readAllCtx(ctx, io.LimitReader(rc, want.Size+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := checkFile(name, data, want); err != nil {
		return nil, err
	}
	return data, nil
}

func checkFile(name string, data []byte, want FileHash) error {
	if int64(len(data)) != want.Size {
		return fmt.Errorf("%s: %d bytes, Release lists %d: %w", name, len(data), want.Size, ErrSizeMismatch)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want.SHA256 {
		return fmt.Errorf("%s: sha256 %s, Release lists %s: %w", name, got, want.SHA256, ErrDigestMismatch)
	}
	return nil
}

// readAllCtx is io.ReadAll that stops when ctx is done.
func readAllCtx(ctx context.Context, r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	chunk := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.Read(chunk)
		buf.Write(chunk[:n])
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// maxUnlisted caps a decompressed Packages file whose plain form the Release
// does not list (so there is no size to hold it to): a decompression bomb
// stops here. Debian's largest (main/amd64) is under 100 MiB.
const maxUnlisted = 1 << 30

// FetchPackages fetches the Packages index of one component and
// architecture, verifies it against the Release, decompresses it and parses
// it. It tries Packages.xz, Packages.gz and Packages in that order among the
// forms the Release lists, moving on only when the fetcher reports
// ErrNotFound; a form that fails verification is an error, never skipped.
// When the Release also lists the plain Packages, the decompressed bytes
// must match it too.
func FetchPackages(ctx context.Context, rel *Release, fetch Fetcher, component, arch string) ([]Package, error) {
	base := component + "/binary-" + arch + "/Packages"
	if !cleanRelPath(base) {
		return nil, fmt.Errorf("component %q, architecture %q: %w", component, arch, ErrMalformed)
	}
	var tried []string
	for _, ext := range []string{".xz", ".gz", ""} {
		name := base + ext
		if _, ok := rel.SHA256[name]; !ok {
			continue
		}
		tried = append(tried, name)
		data, err := FetchVerified(ctx, rel, fetch, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		plain, err := decompress(data, ext, rel, base)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		pkgs, err := ParsePackages(bytes.NewReader(plain))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return pkgs, nil
	}
	if len(tried) == 0 {
		return nil, fmt.Errorf("%s{.xz,.gz,}: %w", base, ErrNotListed)
	}
	return nil, fmt.Errorf("%s: %w", strings.Join(tried, ", "), ErrNotFound)
}

func decompress(data []byte, ext string, rel *Release, plainName string) ([]byte, error) {
	var r io.Reader
	switch ext {
	case "":
		return data, nil
	case ".xz":
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		r = xr
	case ".gz":
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gr.Close()
		r = gr
	default:
		return nil, fmt.Errorf("compression %q unsupported", ext)
	}
	limit := int64(maxUnlisted)
	want, listed := rel.SHA256[plainName]
	if listed {
		limit = want.Size
	}
	// Read one byte past the limit: a stream that decompresses to more than
	// the Release says is refused, not cut.
	plain, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		// A truncated stream ends with an unexpected EOF or a format error
		// (xz checks its index and CRC at the end); either way, refuse.
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if listed {
		if err := checkFile(plainName, plain, want); err != nil {
			return nil, fmt.Errorf("decompressed: %w", err)
		}
	} else if int64(len(plain)) > limit {
		return nil, fmt.Errorf("decompressed past %d bytes: %w", limit, ErrSizeMismatch)
	}
	return plain, nil
}

// Package is one stanza of a Packages index, with the relation fields parsed.
type Package struct {
	Name         string
	Version      version.Version
	Architecture string
	Priority     string
	Essential    bool
	Filename     string // relative to the mirror root (pool/...)
	Size         int64
	SHA256       string // lower-case hex
	Depends      dependency.Dependency
	PreDepends   dependency.Dependency
	Provides     dependency.Dependency
	Replaces     dependency.Dependency
	Breaks       dependency.Dependency
	Conflicts    dependency.Dependency
}

// ParsePackages parses a Packages index. Every stanza must have Package,
// Version, Architecture, Filename, Size and SHA256; a stanza that lacks one
// or has one that does not parse is an error naming the package, since the
// lock must never record a .deb it cannot verify.
func ParsePackages(r io.Reader) ([]Package, error) {
	var out []Package
	err := ReadParagraphs(r, func(p *Paragraph) error {
		pkg, err := parsePackage(p)
		if err != nil {
			return err
		}
		out = append(out, pkg)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse Packages: %w", err)
	}
	return out, nil
}

func parsePackage(p *Paragraph) (Package, error) {
	var pkg Package
	req := func(name string) (string, error) {
		v, ok := p.Get(name)
		if !ok || v == "" {
			return "", fmt.Errorf("package %q: no %s: %w", pkg.Name, name, ErrMalformed)
		}
		return v, nil
	}
	var err error
	if pkg.Name, err = req("Package"); err != nil {
		return pkg, err
	}
	if !validPackageName(pkg.Name) {
		return pkg, fmt.Errorf("package name %q: %w", pkg.Name, ErrMalformed)
	}
	v, err := req("Version")
	if err != nil {
		return pkg, err
	}
	if pkg.Version, err = ParseVersion(v); err != nil {
		return pkg, fmt.Errorf("package %s: %w", pkg.Name, err)
	}
	if pkg.Architecture, err = req("Architecture"); err != nil {
		return pkg, err
	}
	if pkg.Filename, err = req("Filename"); err != nil {
		return pkg, err
	}
	if !cleanRelPath(pkg.Filename) {
		return pkg, fmt.Errorf("package %s: Filename %q is not a clean relative path: %w", pkg.Name, pkg.Filename, ErrMalformed)
	}
	s, err := req("Size")
	if err != nil {
		return pkg, err
	}
	if pkg.Size, err = strconv.ParseInt(s, 10, 64); err != nil || pkg.Size < 0 {
		return pkg, fmt.Errorf("package %s: Size %q: %w", pkg.Name, s, ErrMalformed)
	}
	if pkg.SHA256, err = req("SHA256"); err != nil {
		return pkg, err
	}
	pkg.SHA256 = strings.ToLower(pkg.SHA256)
	if b, err := hex.DecodeString(pkg.SHA256); err != nil || len(b) != 32 {
		return pkg, fmt.Errorf("package %s: SHA256 %q: %w", pkg.Name, pkg.SHA256, ErrMalformed)
	}
	pkg.Priority, _ = p.Get("Priority")
	if e, ok := p.Get("Essential"); ok {
		switch e {
		case "yes":
			pkg.Essential = true
		case "no":
		default:
			return pkg, fmt.Errorf("package %s: Essential %q: %w", pkg.Name, e, ErrMalformed)
		}
	}
	for _, rf := range []struct {
		field string
		dst   *dependency.Dependency
	}{
		{"Depends", &pkg.Depends},
		{"Pre-Depends", &pkg.PreDepends},
		{"Provides", &pkg.Provides},
		{"Replaces", &pkg.Replaces},
		{"Breaks", &pkg.Breaks},
		{"Conflicts", &pkg.Conflicts},
	} {
		v, ok := p.Get(rf.field)
		if !ok {
			continue
		}
		d, err := ParseRelations(v)
		if err != nil {
			return pkg, fmt.Errorf("package %s: %s: %w", pkg.Name, rf.field, err)
		}
		*rf.dst = *d
	}
	return pkg, nil
}

// ParseRelations parses a relation field (Depends and the like). Relation
// fields may be folded over lines; the parser sees them joined.
func ParseRelations(s string) (*dependency.Dependency, error) {
	s = strings.Join(strings.Fields(s), " ")
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("relations %q: control character: %w", s, ErrMalformed)
	}
	d, err := dependency.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("relations %q: %w: %w", s, ErrMalformed, err)
	}
	for _, r := range d.Relations {
		for _, p := range r.Possibilities {
			if !validPackageName(p.Name) {
				return nil, fmt.Errorf("relations %q: package name %q: %w", s, p.Name, ErrMalformed)
			}
			if p.Version != nil {
				if _, err := ParseVersion(p.Version.Number); err != nil {
					return nil, fmt.Errorf("relations %q: %w", s, err)
				}
			}
		}
	}
	return d, nil
}

// validPackageName follows Debian policy 5.6.1: lower-case letters, digits,
// '+', '-', '.', at least two characters, starting with a letter or digit.
func validPackageName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '+' || c == '-' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// ParseVersion parses a Debian version as dpkg does.
func ParseVersion(s string) (version.Version, error) {
	v, err := version.Parse(s)
	if err != nil {
		return v, fmt.Errorf("version %q: %w: %w", s, ErrMalformed, err)
	}
	return v, nil
}

// CompareVersions compares two Debian versions with dpkg's algorithm:
// negative when a < b, zero when equal, positive when a > b.
func CompareVersions(a, b string) (int, error) {
	va, err := ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return version.Compare(va, vb), nil
}
