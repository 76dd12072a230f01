//go:build wasip1

package main

// kiln.deb (deb.go, brief C) declares configureStep; once it is on the
// branch this line becomes
//
//	func init() { configureStep = debConfigure }
//
// Until then debConfigure is referenced here so that the package builds
// and lints on its own.
var _ = debConfigure
