package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The compiled-module cache (Config.CacheDir) holds one directory per
// module digest, each a wazero compilation cache of its own, with kiln's
// checksums of wazero's files beside them:
//
//	CACHEDIR/<module digest>/wazero-<version>-<arch>-<os>/<key>   wazero's
//	CACHEDIR/<module digest>/kiln.sum                            kiln's
//
// wazero checks only the machine code of an entry, with a CRC; damage
// elsewhere (the function offsets, the lengths) makes it read garbage or
// run code from the wrong offset, and damage it does detect fails every
// compile of the module from then on. kiln checks the whole file against
// kiln.sum before wazero reads it, removes a damaged entry and compiles
// again, with a warning: a damaged cache costs a compile, never a build.

const (
	cacheSumFile   = "kiln.sum"
	cacheSumHeader = "kiln-module-cache/1"
	// cacheTmpAge is when a wazero temporary file is a crash's leftover
	// rather than another build's entry being written.
	cacheTmpAge = time.Hour
)

// CacheProblem is a damaged or stray file CheckCache found.
type CacheProblem struct {
	Path    string // the file or directory, under the cache directory
	Problem string
	// Removed: CheckCache removed it (repair was set).
	Removed bool
}

func (p CacheProblem) String() string {
	s := p.Path + ": " + p.Problem
	if p.Removed {
		s += " (removed)"
	}
	return s
}

// CheckCache verifies every entry of the compiled-module cache in dir (a
// Config.CacheDir, <store>/cache/wazero for kiln), for `kiln store fsck`:
// each wazero file against its checksum, entries without one, files that
// are no entry (an older kiln's layout, a crash's temporary files). With
// repair it removes what it reports, so the next build compiles those
// modules again. A missing dir is an empty cache. Other builds may use the
// cache meanwhile: an entry they are writing is not reported.
func CheckCache(dir string, repair bool) ([]CacheProblem, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	var problems []CacheProblem
	report := func(path, problem string) {
		p := CacheProblem{Path: path, Problem: problem}
		if repair {
			if err := os.RemoveAll(path); err == nil {
				p.Removed = true
			}
		}
		problems = append(problems, p)
	}
	for _, ent := range ents {
		path := filepath.Join(dir, ent.Name())
		if !ent.IsDir() || !isDigest(ent.Name()) {
			report(path, "not a module's cache entry (an older kiln's layout?)")
			continue
		}
		_, stray, reason, err := verifyModuleCache(path)
		if err != nil {
			return problems, err
		}
		for _, s := range stray {
			report(s, "temporary file left by a crash")
		}
		if reason != "" {
			p := CacheProblem{Path: path, Problem: reason}
			if repair {
				if err := removeCacheEntry(path); err == nil {
					p.Removed = true
				}
			}
			problems = append(problems, p)
		}
	}
	return problems, nil
}

func isDigest(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 64
}

// cacheFiles lists wazero's files under a module's cache directory,
// relative to it and sorted, and the temporary files older than
// cacheTmpAge.
func cacheFiles(dir string) (files, stray []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case rel == cacheSumFile || strings.HasPrefix(rel, cacheSumFile+"."):
			if rel != cacheSumFile {
				if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > cacheTmpAge {
					stray = append(stray, path)
				}
			}
		case strings.HasSuffix(rel, ".tmp"):
			if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > cacheTmpAge {
				stray = append(stray, path)
			}
		default:
			files = append(files, rel)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	slices.Sort(files)
	return files, stray, err
}

// fileSum is a file's line in kiln.sum.
func fileSum(dir, rel string) (string, error) {
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x %d %s", h.Sum(nil), n, rel), nil
}

// verifyModuleCache checks a module's cache directory against its
// kiln.sum: reason is empty when every wazero file in it is the one kiln
// recorded (or there is none: a cache miss). files are wazero's files.
func verifyModuleCache(dir string) (files, stray []string, reason string, err error) {
	files, stray, err = cacheFiles(dir)
	if err != nil || len(files) == 0 {
		return files, stray, "", err
	}
	data, err := os.ReadFile(filepath.Join(dir, cacheSumFile))
	if errors.Is(err, fs.ErrNotExist) {
		return files, stray, "no checksum recorded (written by an older kiln, or cut short)", nil
	}
	if err != nil {
		return files, stray, "", err
	}
	want := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != cacheSumHeader {
		return files, stray, "damaged checksum file", nil
	}
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) != 3 {
			return files, stray, "damaged checksum file", nil
		}
		want[f[2]] = sc.Text()
	}
	for _, rel := range files {
		line, ok := want[rel]
		if !ok {
			return files, stray, rel + ": no checksum recorded", nil
		}
		got, err := fileSum(dir, rel)
		if err != nil {
			return files, stray, "", err
		}
		if got != line {
			return files, stray, rel + ": " + sumDifference(line, got), nil
		}
	}
	return files, stray, "", nil
}

func sumDifference(want, got string) string {
	w, g := strings.Fields(want), strings.Fields(got)
	if len(w) > 1 && len(g) > 1 && w[1] != g[1] {
		return fmt.Sprintf("size %s, recorded %s", g[1], w[1])
	}
	return "content differs from its recorded checksum"
}

// writeModuleSum records the checksums of a module's cache files, after
// wazero wrote them. Written to a temporary file and renamed, so a reader
// sees the old sums or the new ones.
func writeModuleSum(dir string, files []string) error {
	var b strings.Builder
	b.WriteString(cacheSumHeader + "\n")
	for _, rel := range files {
		line, err := fileSum(dir, rel)
		if err != nil {
			return err
		}
		b.WriteString(line + "\n")
	}
	tmp := filepath.Join(dir, cacheSumFile+"."+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, cacheSumFile)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// removeCacheEntry removes a module's cache files but keeps its
// directories, which wazero's cache expects to exist once created.
func removeCacheEntry(dir string) error {
	files, _, err := cacheFiles(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, rel := range append(files, cacheSumFile) {
		if err := os.Remove(filepath.Join(dir, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
