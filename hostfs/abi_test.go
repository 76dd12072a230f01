package hostfs_test

import (
	"strings"
	"testing"
)

// TestHostABI calls the kiln_hostfs imports with raw arguments, bad pointers
// and out-of-range values included, and compares the WASI errnos with the ABI
// in docs/hostfs.md: 0 ok, 20 EEXIST, 21 EFAULT, 28 EINVAL, 37 ENAMETOOLONG,
// 44 ENOENT, 49 ENOMSG (missing xattr), 68 ERANGE, 69 EROFS, 76 ENOTCAPABLE.
func TestHostABI(t *testing.T) {
	r, mod := guest(t, "hostile")
	const want = `lstat ok 0
  mode 100640
lstat relative-to-root 0
lstat efault-path 21
lstat efault-stat 21
lstat nul 28
lstat long 37
lstat escape 44
setxattr ok 0
setxattr create-existing 20
setxattr bad-flags 28
setxattr efault-value 21
getxattr size-query 0
  size 5
getxattr too-small 68
getxattr efault-size 21
getxattr missing 49
utimens ok 0
utimens omit 0
utimens now 28
utimens nsec-range 28
chmod ok 0
chmod bad-mode 28
chmod read-only 69
lchown keep-both 0
mknod dir 28
mknod socket 28
mknod existing 20
mknod major 28
`
	for _, res := range resolvers {
		t.Run(res.String(), func(t *testing.T) {
			e := newEscapeEnv(t, res, "abi")
			stdout, stderr, code := runGuest(t, r, mod, e.mounts, "hostile", "abi", e.outside)
			if code != 0 {
				t.Fatalf("guest exited %d: %s", code, stderr)
			}
			if stdout != want {
				t.Errorf("ABI results differ:\n got:\n%s\nwant:\n%s", stdout, want)
			}
			e.check(t)

			// A guest call whose context carries no mount table is a runtime
			// bug; it must fail closed, with ENOTCAPABLE.
			stdout, _, _ = runGuestContext(t, t.Context(), r, mod, e.mounts, "hostile", "abi-nomounts", e.outside)
			if got := strings.TrimSpace(stdout); got != "lstat no-mount-table 76" {
				t.Errorf("without a mount table: %q", got)
			}
		})
	}
}
