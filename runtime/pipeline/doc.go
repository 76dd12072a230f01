// Package pipeline runs a manifest: it resolves every stage to the module
// that provides it, validates options against the stage's schema, computes
// stage ids, fetches sources, and runs the stages that the store does not
// already hold, one after another in one object's write context.
//
// Build is the one entry point for a whole build (kiln build maps its
// flags onto a BuildConfig); MakePlan is its planning half, which kiln
// inspect shows, and Run its running half.
//
// # Ids
//
// A stage's id is a SHA-256 over the stage name, the digest of the module
// that provides it, the id of the build pipeline's tree, the id of the
// previous stage and the canonical JSON of its options (docs/pipeline.md).
// Because the module digest is part of it, a changed stage invalidates its
// cached results and everything after it; osbuild's ids do not, a known
// source of stale caches. An assembler's id is made the same way from its
// name, its implementation version, the build tree and the tree it reads.
//
// # Running
//
// The last stage whose id the store contains is the starting point; the
// stages after it run in a new object on top of it. A stage is committed
// when a checkpoint names it, when an export needs it, or when it ends a
// build pipeline (whose tree later stages read at /run/kiln/build). The
// assembler reads the finished tree through a read context; its output is
// committed as an object of its own and copied to the output directory.
package pipeline
