package treecopy

// SetChunkHook lets the external tests run f after each chunk of file data
// copied; the returned function removes it.
func SetChunkHook(f func()) func() {
	chunkHook = f
	return func() { chunkHook = nil }
}
