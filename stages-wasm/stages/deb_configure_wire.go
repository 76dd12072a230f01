//go:build wasip1

package main

// kiln.deb's unpacker (deb.go) calls configureStep once every package is
// in the tree; debConfigure is the step that reproduces the maintainer
// scripts' effects (docs/maintainer-scripts.md).
func init() { configureStep = debConfigure }
