package debrepo

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FileHash is one entry of a Release's SHA256 list.
type FileHash struct {
	Size   int64
	SHA256 string // lower-case hex, 64 characters
}

// Release holds the fields of a (verified) Release that the lock step uses.
type Release struct {
	Origin        string
	Label         string
	Suite         string
	Codename      string
	Date          time.Time
	ValidUntil    time.Time // zero when the Release has no Valid-Until
	Architectures []string
	Components    []string
	// SHA256 maps a path relative to dists/<suite>/ to its size and digest.
	SHA256 map[string]FileHash
}

// Paths returns the SHA256 list's paths, sorted, for deterministic output.
func (r *Release) Paths() []string {
	out := make([]string, 0, len(r.SHA256))
	for p := range r.SHA256 {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// CheckValid refuses a Release whose Valid-Until is before now: an attacker
// who can serve an old, validly signed Release could otherwise freeze a
// client on packages with known holes. allowExpired is for snapshot mirrors,
// whose Release files are old by design.
func (r *Release) CheckValid(now time.Time, allowExpired bool) error {
	if r.ValidUntil.IsZero() || allowExpired {
		return nil
	}
	if now.After(r.ValidUntil) {
		return fmt.Errorf("Release %s: Valid-Until %s is before %s: %w",
			r.Suite, r.ValidUntil.Format(time.RFC1123), now.UTC().Format(time.RFC1123), ErrReleaseExpired)
	}
	return nil
}

// Release dates are RFC 2822 as apt writes them; days can have one digit.
var releaseDateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 02 Jan 2006 15:04:05 MST",
	"Mon, 02 Jan 2006 15:04:05 -0700",
}

func parseReleaseDate(s string) (time.Time, error) {
	for _, l := range releaseDateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q is not RFC 2822: %w", s, ErrMalformed)
}

// ParseRelease parses the text of a Release file (the signed part of an
// InRelease). It requires Suite or Codename, a Date and a SHA256 list, and
// refuses paths that could leave dists/<suite>/.
func ParseRelease(text []byte) (*Release, error) {
	var paras []*Paragraph
	if err := ReadParagraphs(bytes.NewReader(text), func(p *Paragraph) error {
		paras = append(paras, p)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("Release: %w", err)
	}
	if len(paras) != 1 {
		return nil, fmt.Errorf("Release: %d paragraphs, want 1: %w", len(paras), ErrMalformed)
	}
	p := paras[0]
	r := &Release{SHA256: map[string]FileHash{}}
	r.Origin, _ = p.Get("Origin")
	r.Label, _ = p.Get("Label")
	r.Suite, _ = p.Get("Suite")
	r.Codename, _ = p.Get("Codename")
	if r.Suite == "" && r.Codename == "" {
		return nil, fmt.Errorf("Release: no Suite or Codename: %w", ErrMalformed)
	}
	d, ok := p.Get("Date")
	if !ok {
		return nil, fmt.Errorf("Release: no Date: %w", ErrMalformed)
	}
	var err error
	if r.Date, err = parseReleaseDate(d); err != nil {
		return nil, fmt.Errorf("Release Date: %w", err)
	}
	if v, ok := p.Get("Valid-Until"); ok {
		if r.ValidUntil, err = parseReleaseDate(v); err != nil {
			return nil, fmt.Errorf("Release Valid-Until: %w", err)
		}
		if r.ValidUntil.Before(r.Date) {
			return nil, fmt.Errorf("Release: Valid-Until before Date: %w", ErrMalformed)
		}
	}
	if v, ok := p.Get("Architectures"); ok {
		r.Architectures = strings.Fields(v)
	}
	if v, ok := p.Get("Components"); ok {
		r.Components = strings.Fields(v)
	}
	sums, ok := p.Get("SHA256")
	if !ok {
		return nil, fmt.Errorf("Release: no SHA256 list: %w", ErrMalformed)
	}
	for i, line := range strings.Split(sums, "\n") {
		if strings.TrimSpace(line) == "" {
			continue // the field's first line is empty
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("Release SHA256 line %d: %d fields, want 3: %w", i, len(f), ErrMalformed)
		}
		digest, sizeStr, name := strings.ToLower(f[0]), f[1], f[2]
		if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("Release SHA256 %s: digest %q is not 64 hex digits: %w", name, f[0], ErrMalformed)
		}
		size, err := strconv.ParseInt(sizeStr, 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("Release SHA256 %s: size %q: %w", name, sizeStr, ErrMalformed)
		}
		if !cleanRelPath(name) {
			return nil, fmt.Errorf("Release SHA256: path %q is not a clean relative path: %w", name, ErrMalformed)
		}
		if _, dup := r.SHA256[name]; dup {
			return nil, fmt.Errorf("Release SHA256: %s listed twice: %w", name, ErrMalformed)
		}
		r.SHA256[name] = FileHash{Size: size, SHA256: digest}
	}
	if len(r.SHA256) == 0 {
		return nil, fmt.Errorf("Release: empty SHA256 list: %w", ErrMalformed)
	}
	return r, nil
}

// cleanRelPath reports whether p is relative, already clean and stays below
// its root, so it can be joined to a mirror URL or a cache path.
func cleanRelPath(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p &&
		p != ".." && !strings.HasPrefix(p, "../") && !strings.ContainsAny(p, "\\\x00")
}
