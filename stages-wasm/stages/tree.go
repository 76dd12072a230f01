//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/treepath"
)

// sourcesDir is where the runtime mounts the store's sources read-only;
// an org.osbuild.files source is the file named by its checksum there.
const sourcesDir = "/run/kiln/sources/org.osbuild.files"

// optPath parses the path in option opt (plain, or tree://).
func optPath(opt, p string) (string, error) {
	q, err := treepath.Parse(p)
	if err != nil {
		return "", fmt.Errorf("option %q: %q: %w", opt, p, err)
	}
	return q, nil
}

// sourcePath is the file of the org.osbuild.files source with checksum sum.
func sourcePath(opt, sum string) (string, error) {
	if !validChecksum(sum) {
		return "", fmt.Errorf("option %q: %q is not a checksum (want sha256:<64 hex digits>, sha384: or sha512:)", opt, sum)
	}
	p := path.Join(sourcesDir, sum)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("option %q: source %s is not among the manifest's org.osbuild.files sources: %w", opt, sum, err)
	}
	return p, nil
}

func validChecksum(s string) bool {
	for alg, n := range map[string]int{"sha256:": 64, "sha384:": 96, "sha512:": 128} {
		if len(s) == len(alg)+n && s[:len(alg)] == alg {
			for _, c := range s[len(alg):] {
				if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
					return false
				}
			}
			return true
		}
	}
	return false
}

// exists reports whether p exists, without following a final symlink.
func exists(p string) (bool, error) {
	_, err := os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// writeConfig writes a configuration file the way osbuild's stages do with
// Python's open(path, "w"): an existing file keeps its mode and owner, a
// new one is root's with mode. WASI creates files 0600 whatever mode is
// asked, so the mode is set through kiln_hostfs.
func writeConfig(p string, data []byte, mode fs.FileMode) error {
	had, err := exists(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	if had {
		return nil
	}
	return setOwnerMode(p, 0, 0, mode)
}

// putFile writes data to p with exactly mode and owner, whether or not p
// existed.
func putFile(p string, data []byte, mode fs.FileMode, uid, gid int) error {
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	return setOwnerMode(p, uid, gid, mode)
}

// setOwnerMode sets owner then mode: a change of owner clears setuid and
// setgid, so the order matters.
func setOwnerMode(p string, uid, gid int, mode fs.FileMode) error {
	if err := sdk.Lchown(p, uid, gid); err != nil {
		return err
	}
	return sdk.Chmod(p, mode)
}

// mkdirAll makes p and its missing parents, each new one with mode and
// owned by uid:gid; existing directories are left alone.
func mkdirAll(p string, mode fs.FileMode, uid, gid int) error {
	st, err := os.Stat(p)
	if err == nil {
		if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: p, Err: errors.New("exists and is not a directory")}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(p); parent != p {
		if err := mkdirAll(parent, mode, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	return setOwnerMode(p, uid, gid, mode)
}

// readOptional returns the text of p, or "" and false when p is absent.
func readOptional(p string) (string, bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// octalMode parses a mode written as an octal string ("0644", "755").
func octalMode(opt, s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("option %q: %q is not an octal mode up to 07777", opt, s)
	}
	return permMode(uint32(n)), nil
}

// permMode converts Linux permission bits (07777) to an fs.FileMode.
func permMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// warnf writes a warning to the stage log (stdout), which kiln shows and
// keeps with the build.
func warnf(format string, args ...any) {
	fmt.Printf("warning: "+format+"\n", args...)
}
