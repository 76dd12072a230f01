package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/runtime/debrepo"
)

const defaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// debIndexCache is where kiln deb resolve keeps verified Packages indexes,
// by sha256: outside the store, whose layout is its own.
func debIndexCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "kiln-deb", "indexes")
}

// hostDebArch maps Go's architecture to Debian's, for --arch's default.
func hostDebArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "loong64":
		return "loong64"
	}
	return runtime.GOARCH // amd64, arm64, ppc64le, s390x, riscv64, mips64le
}

func newDebCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deb",
		Short: "Lock Debian packages and turn a lock into a manifest",
		Long: `Debian packages reach a kiln image in two steps, like osbuild's depsolve or
apko's lock: "kiln deb resolve" runs once, outside any build, and writes a
lock file (packages.lock.json) naming every .deb by name, version,
architecture, pool path and sha256; "kiln deb manifest" fills a manifest's
kiln.deb stage and org.osbuild.curl source from the lock. Builds then need
only the lock: the .debs are fetched by checksum and cached in the store,
so a rebuild is offline and gives the same bytes.

The lock names no mirror: sha256 pins the content, so any mirror (or a
local copy) serves it.`,
		Example: `  kiln deb resolve --suite bookworm -o packages.lock.json busybox ca-certificates
  kiln deb manifest --lock packages.lock.json --mirror http://MIRROR/debian image.json.in -o image.json
  kiln build image.json`,
	}
	cmd.AddCommand(newDebResolveCmd(), newDebManifestCmd())
	return cmd
}

func newDebResolveCmd() *cobra.Command {
	var (
		mirror, suite, arch, keyring, out, cacheDir string
		components                                  []string
		required, essential, allowExpired           bool
	)
	cmd := &cobra.Command{
		Use:   "resolve [flags] PACKAGE...",
		Short: "Resolve packages against a Debian archive and write a lock file",
		Long: `resolve downloads the suite's InRelease, verifies its OpenPGP signature
against --keyring, downloads each component's Packages index for --arch and
checks it against the sha256 the InRelease lists, then resolves the
packages' dependencies as apt does for a fresh install and writes the lock.
Nothing is resolved from a file that failed a check.

Resolution: Depends and Pre-Depends are followed (Recommends and Suggests
are not); for "a | b" an alternative already chosen or requested wins, else
the first installable one; a virtual package is met by a real package of
its name, else by a provider (one already chosen first, then by Priority
and name); versioned relations need a version (or versioned Provides) that
fits, and each package gets its highest version that does. Conflicts and
Breaks among the chosen packages are an error naming both. The lock lists
packages in install order (Pre-Depends strictly first).

A PACKAGE is a name, or a name and a version constraint in quotes:
"libc6 (>= 2.36)". --required adds every Priority: required package (what
debootstrap installs; add apt and usr-is-merged for its minbase variant),
--essential every Essential: yes one.

--mirror is http://, https:// or file:// (a local mirror copy). Without it,
the first http mirror for the suite in /etc/apt/sources.list and
/etc/apt/sources.list.d/ is used.

Verified Packages indexes are cached by sha256 in --cache-dir (default
` + debIndexCache() + `), so resolving again against the same InRelease
downloads only the InRelease. The lock is written atomically: on any error
the previous file is left as it was.`,
		Example: `  # a small container's packages
  kiln deb resolve --suite bookworm -o packages.lock.json \
      busybox ca-certificates tzdata base-files base-passwd netbase

  # debootstrap --variant=minbase's set, plus systemd
  kiln deb resolve --suite bookworm --required -o packages.lock.json \
      apt usr-is-merged systemd systemd-sysv

  # a local mirror copy, two components, a pinned version
  kiln deb resolve --mirror file:///srv/debian --suite bookworm \
      --component main --component contrib "libc6 (>= 2.36)"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !required && !essential {
				return usagef("name at least one PACKAGE, or pass --required or --essential")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			stderr := cmd.ErrOrStderr()
			if suite == "" {
				return usagef("--suite is required, e.g. --suite bookworm")
			}
			if !debrepo.ValidSuite(suite) {
				return usagef("--suite %q: want a suite or codename such as bookworm", suite)
			}
			if !debrepo.ValidArch(arch) || arch == "all" {
				return usagef("--arch %q: want a Debian architecture such as amd64", arch)
			}
			for _, c := range components {
				if !debrepo.ValidSuite(c) {
					return usagef("--component %q: want a component such as main", c)
				}
			}
			var reqs []debrepo.Request
			for _, a := range args {
				r, err := debrepo.ParseRequest(a)
				if err != nil {
					return usageError{err}
				}
				reqs = append(reqs, r)
			}
			if mirror == "" {
				m, err := debrepo.AptMirror(suite)
				if err != nil {
					return usagef("no --mirror, and %v", err)
				}
				mirror = m
			}
			mu, err := debrepo.ParseMirror(mirror)
			if err != nil {
				return usagef("--mirror: %w", err)
			}
			kr, err := debrepo.ReadKeyringFile(keyring)
			if err != nil {
				return usagef("--keyring: %w (Debian's is in the debian-archive-keyring package)", err)
			}
			h := &debrepo.HTTPFetcher{Mirror: mu, Suite: suite, Progress: stderr}
			fmt.Fprintf(stderr, "kiln: resolving %d package(s) against %s %s (%s) for %s\n",
				len(reqs), mu.Redacted(), suite, strings.Join(components, " "), arch)
			l, err := debrepo.ResolveArchive(cmd.Context(), debrepo.ArchiveRequest{
				Suite: suite, Components: components, Architecture: arch,
				Packages: reqs, Required: required, Essential: essential,
				Keyring: kr, Verify: debrepo.VerifyOptions{AllowExpired: allowExpired},
				Fetch: h.Fetch, Cache: cacheDir,
			})
			if err != nil {
				if errors.Is(err, debrepo.ErrReleaseExpired) {
					return fmt.Errorf("%w (for a snapshot mirror, pass --allow-expired)", err)
				}
				return err
			}
			var size int64
			for _, p := range l.Packages {
				size += p.Size
			}
			if out == "-" {
				data, err := l.Marshal()
				if err != nil {
					return err
				}
				if _, err := cmd.OutOrStdout().Write(data); err != nil {
					return err
				}
			} else if err := debrepo.WriteLock(out, l); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "kiln: %d packages, %.1f MiB of .debs, from the InRelease of %s signed by %s; wrote %s\n",
				len(l.Packages), float64(size)/(1<<20), l.Source.InRelease.Date, strings.Join(l.Source.InRelease.Signers, ", "), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&mirror, "mirror", "", "archive root URL (http, https or file); default: the apt configuration's mirror for --suite")
	f.StringVar(&suite, "suite", "", "suite or codename, the dists/ directory (required), e.g. bookworm")
	f.StringArrayVar(&components, "component", []string{"main"}, "archive component (repeatable)")
	f.StringVar(&arch, "arch", hostDebArch(), "Debian architecture; packages of it and of all are candidates")
	f.StringVar(&keyring, "keyring", defaultKeyring, "OpenPGP keyring the InRelease must be signed by")
	f.BoolVar(&required, "required", false, "add every Priority: required package")
	f.BoolVar(&essential, "essential", false, "add every Essential: yes package")
	f.BoolVar(&allowExpired, "allow-expired", false, "accept an InRelease whose Valid-Until has passed (snapshot mirrors); keys must still be valid")
	f.StringVarP(&out, "output", "o", "packages.lock.json", `lock file to write ("-": standard output)`)
	f.StringVar(&cacheDir, "cache-dir", debIndexCache(), `directory of verified indexes by sha256 ("": no cache)`)
	return cmd
}

func newDebManifestCmd() *cobra.Command {
	var lockFile, mirror, out string
	cmd := &cobra.Command{
		Use:   "manifest --lock LOCK [--mirror URL] [flags] TEMPLATE.json",
		Short: "Fill a manifest's kiln.deb stage and sources from a lock file",
		Long: `manifest reads a kiln manifest (osbuild v1 format) in which exactly one
stage is named kiln.deb and has no "packages" option, and writes it with:

  - that stage's options given "packages": [{"name", "version",
    "architecture", "source": "sha256:<hex>"}...] in the lock's install
    order;
  - an "org.osbuild.curl" source item {"url": "<mirror>/<pool path>"} for
    each package, merged with any the template has.

--mirror is http://, https:// or file://, without credentials, query or
fragment. Without it, the first http mirror for the lock's suite in
/etc/apt/sources.list and /etc/apt/sources.list.d (as for kiln deb resolve).
It only says where to download from: the sha256 from the lock is what the
build checks, so the mirror need not be trusted.`,
		Example: `  # the .debs from the mirror apt uses here
  kiln deb manifest --lock packages.lock.json image.json.in -o image.json

  # from a local mirror copy
  kiln deb manifest --lock packages.lock.json --mirror file:///srv/debian \
      image.json.in -o image.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("%s takes one TEMPLATE.json, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := debrepo.ReadLock(lockFile)
			if err != nil {
				return usageError{err}
			}
			if mirror == "" {
				m, err := debrepo.AptMirror(l.Source.Suite)
				if err != nil {
					return usagef("no --mirror, and %v", err)
				}
				mirror = m
			}
			mu, err := debrepo.ParseMirror(mirror)
			if err != nil {
				return usagef("--mirror: %w", err)
			}
			tmpl, err := readBounded(args[0], 64<<20)
			if err != nil {
				return usageError{err}
			}
			data, err := debrepo.ManifestFromLock(args[0], tmpl, l, mu)
			if err != nil {
				return usageError{err}
			}
			if out == "-" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			return writeAtomic(out, data)
		},
	}
	f := cmd.Flags()
	f.StringVar(&lockFile, "lock", "packages.lock.json", "lock file written by kiln deb resolve")
	f.StringVar(&mirror, "mirror", "", "archive root URL the .debs are downloaded from; default: the apt configuration's mirror for the lock's suite")
	f.StringVarP(&out, "output", "o", "-", `manifest to write ("-": standard output)`)
	return cmd
}

func readBounded(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, max>>20)
	}
	return data, nil
}

// writeAtomic writes data to name through a temporary file and a rename.
func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
