// Package fsmeta is kiln's one home for file-metadata helpers that every
// layer needs: Linux st_mode <-> io/fs.FileMode conversions and type names,
// extended attributes read without following symlinks, a RemoveAll that
// gets through read-only directories, and opening a path only once it is
// known to be a regular file.
//
// It belongs to none of kiln's layers (store, hostfs, runtime, assembler,
// the wasip1 guests) and every one of them uses it, so it is a leaf: it
// imports nothing of kiln's, and cmd/kiln's TestPackageBoundaries holds for
// every importer. The mode conversions (mode.go) build for any GOOS,
// wasip1 included, since the Go SDK's guests use them; the rest is Linux.
package fsmeta
