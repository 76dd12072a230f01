// Package library is kiln's built-in stage library: the WebAssembly modules
// stages-wasm/build-library.sh builds into modules/, embedded into the kiln
// binary, each describing its stages in a kiln.stages custom section
// (package wasmmeta).
//
// The modules are build outputs and are not committed; a kiln built before
// `make stages` has an empty library, and Stages says so.
package library
