package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/pipeline"
	"github.com/kilnbuild/kiln/runtime/sources"
	"github.com/kilnbuild/kiln/store"
	"github.com/kilnbuild/kiln/store/mountns"
)

// defaultStore is the store kiln uses without --store: the user's cache
// directory, so that builds share a cache with no configuration.
func defaultStore() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ".kiln-store"
	}
	return filepath.Join(dir, "kiln")
}

// openStore enters kiln's private mount namespace (re-executing kiln in it
// the first time) and opens the store, reporting recovered leftovers.
func openStore(ctx context.Context, cmd *cobra.Command, root string, opts ...store.Option) (*store.Store, error) {
	if err := mountns.Enter(); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, root, opts...)
	if err != nil {
		return nil, err
	}
	if n := st.Recovered(); n > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "kiln: removed %d leftover(s) of interrupted runs from %s\n", n, filepath.Join(root, "tmp"))
	}
	return st, nil
}

// withStore runs fn on the store at root, closing it afterwards.
func withStore(cmd *cobra.Command, root string, fn func(ctx context.Context, st *store.Store) error, opts ...store.Option) error {
	st, err := openStore(cmd.Context(), cmd, root, opts...)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(cmd.Context(), st)
}

func newStoreCmd() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Inspect and maintain the object store",
		Long: `The object store keeps every tree kiln has built, addressed by content:
objects/<treesum>/ holds a committed tree, refs/<id> points at it, tmp/ holds
work in progress. Identical trees are stored once. Several kiln processes may
share one store.

Without --store, kiln uses ` + defaultStore() + `.`,
		Example: `  kiln store ls
  kiln store du --store /var/cache/kiln
  kiln store fsck
  kiln store gc --max-size 20G`,
	}
	cmd.PersistentFlags().StringVar(&root, "store", defaultStore(), "object store directory")
	cmd.AddCommand(newStoreLsCmd(&root), newStoreDuCmd(&root), newStoreFsckCmd(&root), newStoreGCCmd(&root))
	return cmd
}

func newStoreLsCmd(root *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List objects with their size, last use and refs",
		Long: `List every committed object, least recently used first, with its treesum,
its size on disk, when it was last used and the refs that point at it.`,
		Example: `  kiln store ls
  kiln store ls --json | jq '.[] | select(.size > 1e9)'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, *root, func(ctx context.Context, st *store.Store) error {
				objs, err := st.Objects(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					type jsonObject struct {
						Treesum  string    `json:"treesum"`
						Size     int64     `json:"size"`
						LastUsed time.Time `json:"last_used,omitzero"`
						Refs     []string  `json:"refs"`
					}
					list := make([]jsonObject, 0, len(objs))
					for _, o := range objs {
						list = append(list, jsonObject{o.Sum, o.Size, o.LastUsed, nonNil(o.Refs)})
					}
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(list)
				}
				if len(objs) == 0 {
					fmt.Fprintf(out, "no objects in %s\n", st.Root())
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "OBJECT\tSIZE\tLAST USED\tREFS")
				var total int64
				for _, o := range objs {
					total += o.Size
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Sum[:12], formatSize(o.Size), formatTime(o.LastUsed), strings.Join(o.Refs, " "))
				}
				fmt.Fprintf(tw, "%d objects\t%s\t\t\n", len(objs), formatSize(total))
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
	return cmd
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newStoreDuCmd(root *string) *cobra.Command {
	return &cobra.Command{
		Use:     "du",
		Short:   "Show the store's disk use by area",
		Example: `  kiln store du`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, *root, func(ctx context.Context, st *store.Store) error {
				u, err := st.DiskUsage(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "%10s  objects/\n", formatSize(u.Objects))
				names := make([]string, 0, len(u.Other))
				for name := range u.Other {
					names = append(names, name)
				}
				slices.Sort(names)
				for _, name := range names {
					fmt.Fprintf(out, "%10s  %s/\n", formatSize(u.Other[name]), name)
				}
				fmt.Fprintf(out, "%10s  tmp/\n", formatSize(u.Tmp))
				fmt.Fprintf(out, "%10s  total in %s\n", formatSize(u.Total), st.Root())
				return nil
			})
		},
	}
}

// FsckChecker checks what another package keeps under the store root (the
// fetched sources in sources/, the compiled-module cache in cache/). It
// returns the problems found (paths relative to the store root) and, with
// repair, removes what is damaged so that the next build fetches or
// compiles it again, marking those problems Repaired. It must not block
// past ctx.
type FsckChecker struct {
	Name  string // what it checks, for messages: "sources", "module cache"
	Check func(ctx context.Context, storeRoot string, repair bool) ([]store.Problem, error)
}

// fsckCheckers run after the store's own checks, in order: what the
// packages that own sources/ and cache/ keep there.
var fsckCheckers = []FsckChecker{
	{Name: "sources", Check: fsckSources},
	{Name: "module cache", Check: fsckModuleCache},
}

// moduleCacheDir is where kiln build keeps wazero's compiled modules.
func moduleCacheDir(storeRoot string) string {
	return pipeline.ModuleCacheDir(storeRoot)
}

// fsckModuleCache checks each compiled module against the checksum kiln
// wrote beside it (runtime/engine.CheckCache).
func fsckModuleCache(_ context.Context, storeRoot string, repair bool) ([]store.Problem, error) {
	ps, err := engine.CheckCache(moduleCacheDir(storeRoot), repair)
	out := make([]store.Problem, 0, len(ps))
	for _, p := range ps {
		rel, rerr := filepath.Rel(storeRoot, p.Path)
		if rerr != nil {
			rel = p.Path
		}
		out = append(out, store.Problem{Path: rel, What: "compiled module " + p.Problem, Repaired: p.Removed})
	}
	return out, err
}

// fsckSources checks every fetched source against the checksum it is
// stored under (runtime/sources.Verify).
func fsckSources(ctx context.Context, storeRoot string, repair bool) ([]store.Problem, error) {
	ps, err := sources.Verify(ctx, pipeline.SourcesDir(storeRoot), repair)
	out := make([]store.Problem, 0, len(ps))
	for _, p := range ps {
		rel, rerr := filepath.Rel(storeRoot, p.Path)
		if rerr != nil {
			rel = p.Path
		}
		out = append(out, store.Problem{Path: rel, What: "source " + p.Reason, Repaired: p.Repaired})
	}
	return out, err
}

func newStoreFsckCmd(root *string) *cobra.Command {
	var repair, noClean bool
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check the store's integrity, and repair it with --repair",
		Long: `Check that every object's treesum matches its name (nothing changed a
committed tree's content, modes, owners or xattrs), that every ref points at
an existing object it was committed to, and that the store root holds nothing
unknown. Exits 1 and lists the problems if any are found.

--repair removes what is damaged: a damaged object with the refs that point at
it, and every bad ref, so that the next build rebuilds them. With --repair,
fsck exits 0 when everything it found was repaired.

What an interrupted run leaves in tmp/ (a crash, a kill) is expected and not a
problem: fsck lists it and removes it, unless --no-clean. Directories a running
kiln holds are left alone.

Builds check every object they use too, cheaply (a digest of its files'
metadata recorded at commit, the full treesum when that differs): a damaged
object fails that build, loses its refs, and is rebuilt by the next one.`,
		Example: `  kiln store fsck && echo store is consistent
  kiln store fsck --repair
  kiln store fsck --no-clean    # only look, change nothing`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repair && noClean {
				return usagef("--repair changes the store, --no-clean asks to change nothing: choose one")
			}
			return withStore(cmd, *root, func(ctx context.Context, st *store.Store) error {
				var opts []store.FsckOption
				if !noClean {
					opts = append(opts, store.CleanLeftovers())
				}
				if repair {
					opts = append(opts, store.Repair())
				}
				rep, err := st.Fsck(ctx, opts...)
				if err != nil {
					return err
				}
				problems := rep.Problems
				for _, c := range fsckCheckers {
					ps, err := c.Check(ctx, st.Root(), repair)
					if err != nil {
						return fmt.Errorf("fsck of %s: %w", c.Name, err)
					}
					problems = append(problems, ps...)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "checked %d objects, %d refs, %d entries in tmp/ of %s\n", rep.Objects, rep.Refs, rep.Tmp, st.Root())
				for _, l := range rep.Leftovers {
					fmt.Fprintf(out, "leftover of an interrupted run (expected after a crash): %s\n", l)
				}
				switch {
				case rep.Cleaned > 0:
					fmt.Fprintf(out, "removed %d leftover(s) of interrupted runs\n", rep.Cleaned)
				case len(rep.Leftovers) > 0:
					fmt.Fprintln(out, "leftovers kept (--no-clean); the next kiln command removes them")
				}
				unrepaired := 0
				for _, p := range problems {
					fmt.Fprintf(out, "problem: %s\n", p)
					if !p.Repaired {
						unrepaired++
					}
				}
				switch {
				case len(problems) == 0:
					fmt.Fprintln(out, "no problems found")
					return nil
				case repair && unrepaired == 0:
					fmt.Fprintf(out, "%d problem(s) found, all repaired: the next build rebuilds what was removed\n", len(problems))
					return nil
				case repair:
					fmt.Fprintf(out, "%d problem(s) found, %d not repaired\n", len(problems), unrepaired)
				default:
					fmt.Fprintf(out, "%d problem(s) found (kiln store fsck --repair removes what is damaged)\n", len(problems))
				}
				return exitCodeError{exitFailure}
			}, store.WithoutRecovery()) // fsck itself reports and cleans leftovers
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove damaged objects and bad refs, so the next build rebuilds them")
	cmd.Flags().BoolVar(&noClean, "no-clean", false, "only look: keep the leftovers of interrupted runs in tmp/")
	return cmd
}

func newStoreGCCmd(root *string) *cobra.Command {
	var maxSize string
	cmd := &cobra.Command{
		Use:   "gc --max-size SIZE",
		Short: "Remove least recently used objects until the store fits a size",
		Long: `Remove the least recently used objects, and the refs that point at them,
until objects/ takes at most --max-size. An object in use by a running build
(in any process) is never removed. Refs that point nowhere are removed too.
SIZE is a number of bytes with an optional unit: K, M, G, T (powers of 1024;
KiB, MiB, GiB, TiB and KB, MB, GB, TB, powers of 1000, are accepted too).`,
		Example: `  kiln store gc --max-size 20G
  kiln store gc --max-size 0     # remove every object not in use`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("max-size") {
				return usagef("kiln store gc needs --max-size (for example --max-size 20G)")
			}
			limit, err := parseSize(maxSize)
			if err != nil {
				return usagef("--max-size: %v", err)
			}
			return withStore(cmd, *root, func(ctx context.Context, st *store.Store) error {
				res, err := st.GC(ctx, limit)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, o := range res.Removed {
					fmt.Fprintf(out, "removed %s  %s  %s\n", o.Sum[:12], formatSize(o.Size), strings.Join(o.Refs, " "))
				}
				for _, o := range res.InUse {
					fmt.Fprintf(out, "in use, kept %s  %s  %s\n", o.Sum[:12], formatSize(o.Size), strings.Join(o.Refs, " "))
				}
				fmt.Fprintf(out, "objects/: %s before, %s after (limit %s)\n", formatSize(res.Before), formatSize(res.After), formatSize(limit))
				if res.After > limit {
					fmt.Fprintf(cmd.ErrOrStderr(), "kiln: objects in use keep the store above %s\n", formatSize(limit))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&maxSize, "max-size", "", "largest size objects/ may keep, e.g. 20G")
	return cmd
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
