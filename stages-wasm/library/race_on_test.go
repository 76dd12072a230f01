//go:build race

package library

// raceEnabled: the race detector slows the stages (wazero) several times.
const raceEnabled = true
