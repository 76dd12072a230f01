// Package treesum computes the content address of a filesystem tree: a
// Merkle hash over the tree's sorted entries that covers names, file types,
// permission and special bits, numeric ownership, file contents, symlink
// targets, device numbers and extended attributes, and deliberately excludes
// timestamps, inode numbers and hardlink structure, so that equal content
// produced by different runs (or shared between objects through hardlinks)
// has one address. docs/treesum.md is the normative definition; the test
// vectors there are checked by this package's tests.
//
// File contents are hashed in parallel, because Sum runs on the hot path of
// every commit of the object store.
package treesum
