//go:build !kilncrash

package crashpoint

// Hit marks a crash point; without the kilncrash build tag it does nothing.
func Hit(string) {}

// Enabled reports whether crash points can fire: false in normal builds.
const Enabled = false
