//go:build wasip1

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/unitfile"
)

type systemdOptions struct {
	Enabled          []string `json:"enabled_services"`
	Disabled         []string `json:"disabled_services"`
	Masked           []string `json:"masked_services"`
	MaskedGenerators []string `json:"masked_generators"`
	DefaultTarget    string   `json:"default_target"`
}

// org.osbuild.systemd enables, disables and masks units and sets the
// default target by making the symlinks `systemctl --root` would, from the
// units' [Install] sections. No systemctl runs, so the result does not
// depend on the host's systemd version. The steps run in osbuild's order:
// enable, disable, mask, generators, default target.
func init() {
	sdk.Register("org.osbuild.systemd", func(o systemdOptions) error {
		e := &unitfile.Enabler{Find: findUnitToEnable}
		for i, u := range o.Enabled {
			n, err := unitfile.Mangle(u, ".service")
			if err != nil {
				return fmt.Errorf("option \"enabled_services[%d]\": %w", i, err)
			}
			if err := e.Enable(n.String()); err != nil {
				return fmt.Errorf("option \"enabled_services[%d]\": %w", i, err)
			}
		}
		for _, w := range e.Warnings {
			warnf("%s", w)
		}
		for _, l := range e.Links {
			if err := makeUnitLink(l); err != nil {
				return fmt.Errorf("enabling: %w", err)
			}
		}
		for i, u := range o.Disabled {
			if err := disableUnit(u); err != nil {
				return fmt.Errorf("option \"disabled_services[%d]\": %w", i, err)
			}
		}
		for i, u := range o.Masked {
			n, err := unitfile.Mangle(u, ".service")
			if err != nil {
				return fmt.Errorf("option \"masked_services[%d]\": %w", i, err)
			}
			if err := mask(path.Join(unitfile.ConfigDir, n.String())); err != nil {
				return fmt.Errorf("option \"masked_services[%d]\": %w", i, err)
			}
		}
		for i, g := range o.MaskedGenerators {
			if g == "" || strings.ContainsAny(g, "/\x00") || g == "." || g == ".." {
				return fmt.Errorf("option \"masked_generators[%d]\": %q is not a generator name", i, g)
			}
			if err := mask(path.Join("/etc/systemd/system-generators", g)); err != nil {
				return fmt.Errorf("option \"masked_generators[%d]\": %w", i, err)
			}
		}
		if o.DefaultTarget != "" {
			if err := setDefault(o.DefaultTarget); err != nil {
				return fmt.Errorf("option \"default_target\": %w", err)
			}
		}
		return nil
	})
}

// findUnit locates a unit file on the search path, resolving symlinks
// (linked units, aliases) as systemd does; a link to /dev/null is a mask.
func findUnit(name string) (string, string, error) {
	for _, dir := range unitfile.SearchPath {
		p := path.Join(dir, name)
		target, err := os.Readlink(p)
		if err == nil {
			if target == "/dev/null" {
				return "", "", fmt.Errorf("%w: %s -> /dev/null", unitfile.ErrMasked, p)
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return "", "", fmt.Errorf("%s: %w", p, err)
			}
			p = real
		}
		text, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", "", err
		}
		return p, string(text), nil
	}
	return "", "", fmt.Errorf("%w in %s", unitfile.ErrNotFound, strings.Join(unitfile.SearchPath, ", "))
}

// findUnitToEnable is findUnit for enabling: as systemctl enable, it
// refuses a unit whose file in /etc/systemd/system or /run/systemd/system
// is a symlink (an alias enable made, or a unit `systemctl link` linked):
// enabling goes through the unit's own name.
func findUnitToEnable(name string) (string, string, error) {
	for _, dir := range unitfile.SearchPath[:2] {
		p := path.Join(dir, name)
		if target, err := os.Readlink(p); err == nil && target != "/dev/null" {
			return "", "", fmt.Errorf("refusing to operate on linked unit file %s -> %s, as systemctl does; enable the unit by its own name", p, target)
		}
	}
	return findUnit(name)
}

// makeUnitLink creates one symlink; one already pointing at the same
// target is fine, anything else in the way is an error, as systemctl says.
func makeUnitLink(l unitfile.Link) error {
	if err := mkdirAll(path.Dir(l.Path), 0o755, 0, 0); err != nil {
		return err
	}
	if cur, err := os.Readlink(l.Path); err == nil {
		if cur == l.Target || sameFile(path.Dir(l.Path), cur, l.Target) {
			return nil
		}
		return fmt.Errorf("%s exists and points to %s, not %s", l.Path, cur, l.Target)
	}
	if err := os.Symlink(l.Target, l.Path); err != nil {
		return err
	}
	return nil
}

// sameFile reports whether two link targets (relative ones taken from dir)
// resolve to the same file in the tree, as systemctl accepts an existing
// link to /lib/systemd/system/x.service where it would write
// /usr/lib/systemd/system/x.service on a merged-/usr system.
func sameFile(dir, a, b string) bool {
	resolve := func(t string) (string, bool) {
		if !path.IsAbs(t) {
			t = path.Join(dir, t)
		}
		r, err := filepath.EvalSymlinks(t)
		return r, err == nil
	}
	ra, okA := resolve(a)
	rb, okB := resolve(b)
	return okA && okB && ra == rb
}

// disableUnit removes the symlinks under /etc/systemd/system that
// `systemctl disable` removes: those named after the unit (the real unit
// when the name is an alias, as systemctl resolves it) or the units its
// Also= names, instances of them when they are templates, and links to a
// file of those names. As in systemctl, a masked unit is left alone and a
// unit without a file only has its links of that name removed; both are
// warnings, not errors. The directories left empty go too.
func disableUnit(given string) error {
	n, err := unitfile.Mangle(given, ".service")
	if err != nil {
		return err
	}
	name := n.String()
	file, text, err := findUnit(name)
	if errors.Is(err, unitfile.ErrNotFound) && n.Template && n.Instance != "" {
		file, text, err = findUnit(n.TemplateName())
	}
	marked := []string{name}
	switch {
	case errors.Is(err, unitfile.ErrMasked):
		warnf("unit %s is masked; not disabling it", name)
		return nil
	case errors.Is(err, unitfile.ErrNotFound):
		warnf("unit %s does not exist; removing only the links of that name", name)
	case err != nil:
		return fmt.Errorf("unit %s: %w", name, err)
	default:
		// Only the resolved name is marked, as in systemctl 252: disabling
		// the alias spec-alt@one of spec@one removes spec@one's links and
		// leaves the alias link itself (it leads to spec@.service).
		marked = []string{unitfile.Resolved(n, file).String()}
		marked = append(marked, unitfile.ParseInstall(text).Also...)
	}
	var removed []string
	for again := true; again; {
		again = false
		err := filepath.WalkDir(unitfile.ConfigDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			if !unitfile.DisableRemoves(marked, path.Base(p), linkDest(p)) {
				return nil
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			// A link to the link just removed goes too, as systemctl
			// marks each link it removes and looks again.
			removed, marked, again = append(removed, p), append(marked, p), true
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, p := range removed {
		for dir := path.Dir(p); strings.HasPrefix(dir, unitfile.ConfigDir+"/"); dir = path.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
	}
	return nil
}

// linkDest is where the symlink p leads in the tree, links followed; for a
// dangling link, its target as written (taken from p's directory).
func linkDest(p string) string {
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	target, err := os.Readlink(p)
	if err != nil {
		return p
	}
	if !path.IsAbs(target) {
		target = path.Join(path.Dir(p), target)
	}
	return target
}

// mask points p at /dev/null. A regular file there is the administrator's
// unit and is refused, as systemctl mask refuses it.
func mask(p string) error {
	if err := mkdirAll(path.Dir(p), 0o755, 0, 0); err != nil {
		return err
	}
	st, err := os.Lstat(p)
	switch {
	case err == nil && st.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("%s exists and is not a symlink; remove it to mask the unit", p)
	case err == nil:
		if err := os.Remove(p); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return os.Symlink("/dev/null", p)
}

// setDefault points default.target at the target's unit file.
func setDefault(given string) error {
	n, err := unitfile.Mangle(given, ".target")
	if err != nil {
		return err
	}
	target := n.String()
	if n.Suffix != ".target" {
		return fmt.Errorf("%s is not a .target unit", target)
	}
	file, _, err := findUnit(target)
	if err != nil {
		return fmt.Errorf("unit %s: %w", target, err)
	}
	p := path.Join(unitfile.ConfigDir, "default.target")
	if err := mkdirAll(unitfile.ConfigDir, 0o755, 0, 0); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink(file, p)
}
