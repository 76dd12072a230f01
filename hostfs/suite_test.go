package hostfs_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/kilnbuild/kiln/hostfs/hostfstest"
	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/cowtree"
	"github.com/kilnbuild/kiln/store/treecopy"
	"github.com/kilnbuild/kiln/store/treesum"
)

// openWith is the suite's factory for one resolver.
func openWith(r hostfs.Resolver) hostfstest.Factory {
	return func(t *testing.T, dir string) *hostfs.Root {
		t.Helper()
		root, err := hostfs.OpenRoot(dir, hostfs.WithResolver(r))
		if err != nil {
			t.Fatal(err)
		}
		if root.Resolver() != r {
			t.Fatalf("asked for resolver %v, got %v", r, root.Resolver())
		}
		return root
	}
}

func TestOpenat2(t *testing.T)   { hostfstest.Suite(t, openWith(hostfs.ResolveOpenat2)) }
func TestUserspace(t *testing.T) { hostfstest.Suite(t, openWith(hostfs.ResolveUserspace)) }

// TestSuiteCopyUp runs the suite on a tree hardlinked to a base, as the
// store hands it to hostfs on filesystems without reflinks: every check
// must behave as on a tree of its own, and the base must come out
// unchanged.
func TestSuiteCopyUp(t *testing.T) {
	hostfstest.Suite(t, func(t *testing.T, dir string) *hostfs.Root {
		t.Helper()
		scratch := t.TempDir()
		base, state := filepath.Join(scratch, "base"), filepath.Join(scratch, "state")
		if err := treecopy.Copy(t.Context(), dir, base, treecopy.Options{Mode: treecopy.Plain}); err != nil {
			t.Fatal(err)
		}
		if err := fsmeta.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		shared := map[uint64]uint8{}
		if err := treecopy.Copy(t.Context(), base, dir, treecopy.Options{Mode: treecopy.Hardlink, Shared: shared}); err != nil {
			t.Fatal(err)
		}
		if err := cowtree.Create(state, shared); err != nil {
			t.Fatal(err)
		}
		want, err := treesum.Sum(t.Context(), base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if got, err := treesum.Sum(context.Background(), base); err != nil || got != want {
				t.Errorf("the base changed under the check: treesum %s (%v), was %s", got, err, want)
			}
		})
		root, err := hostfs.OpenRoot(dir, hostfs.WithTreeState(state))
		if err != nil {
			t.Fatal(err)
		}
		return root
	})
}
