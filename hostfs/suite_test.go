package hostfs_test

import (
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	"github.com/kilnbuild/kiln/hostfs/hostfstest"
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
