//go:build wasip1

// Command stages is kiln's Go stage library: one WASI command module
// (kiln-stages.wasm) holding every Go stage, run busybox-style with the
// stage's name in argv[0] (sdk.Register and sdk.Dispatch). Each stage is in
// a file of its own and takes the options of the osbuild stage of the same
// name; docs/stages.md lists them and where they differ from osbuild.
//
// The logic worth testing natively (account files, systemd [Install]
// sections, chmod modes, config file formats) lives in internal/ packages
// without build tags; the stages here read and write the tree. Every stage
// is also covered by the golden tests in ../library.
//
// Build with GOOS=wasip1 GOARCH=wasm (stages-wasm/build.sh).
package main
