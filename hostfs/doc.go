// Package hostfs is the only door from a stage to its tree: it confines every
// path a WebAssembly guest names to one host directory, as chroot(2) would.
//
// A [Root] holds one O_PATH directory descriptor for the tree and resolves each
// guest path beneath it, either with openat2(RESOLVE_IN_ROOT|
// RESOLVE_NO_MAGICLINKS) or, on kernels without openat2, with a userspace walk
// of the same semantics: symlinks are followed, but an absolute target starts
// again at the root and ".." at the root stays there, and no other mount inside the
// tree is entered, so no path, symlink or hardlink the guest can name reaches
// a file outside the tree. Operations on a
// final name (mkdir, unlink, rename, link, symlink, lstat, xattrs) resolve the
// parent directory in the root and then act on the single base name with the
// *at system calls, so a swapped symlink cannot redirect them. Opening goes
// through an O_PATH descriptor that is checked before it is reopened, so a
// device node in the tree (the guest may mknod one) is never opened, and the
// host's disks stay out of reach. [NewFS] exposes a root to wazero as an
// experimental/sys.FS (read-write or read-only), and [Instantiate] adds the
// "kiln_hostfs" host module for what WASI preview1 cannot say: chmod, lchown,
// mknod, xattrs, nanosecond utimens and a full lstat. Both take their paths
// through the same resolver, and the host module finds the stage's mount
// table in the call's context ([WithMounts]). Nothing of the host shows
// through either door: what a stage creates or changes gets the root's epoch
// ([WithEpoch]) as mtime, directories list sorted, and device and inode
// numbers are the mount's and the root's own (inodes.go). wazero's WASI says
// EIO for host errors it has no number for (ENOSPC among them); the real one
// is kept for the kiln_hostfs call eio_cause. For unpacking at the speed of
// the disk, stream_* decompress a file in the host for the guest to read
// (stream.go; the streams end with the module) and write_file makes a whole
// file with owner, mode and mtime in one call (writefile.go).
// docs/hostfs.md holds the ABI.
package hostfs
