package pipeline

import "path/filepath"

// The directories of a store root that the runtime keeps there, beside the
// store's own objects/, refs/ and tmp/ (store.KnownDirs lists them, so
// that fsck knows them and Open makes them private). They are named here
// only: kiln build, kiln store fsck and the tests find them through these
// functions.

// SourcesDir is where a store keeps fetched sources (sources.Fetcher.Dir).
func SourcesDir(storeRoot string) string { return filepath.Join(storeRoot, "sources") }

// ModuleCacheDir is where a store keeps wazero's compiled modules
// (engine.Config.CacheDir).
func ModuleCacheDir(storeRoot string) string { return filepath.Join(storeRoot, "cache", "wazero") }
