//go:build race

package main

// raceEnabled: tests that spend their time in qemu or in whole Debian
// builds skip under -race; make test's race-free pass runs them.
const raceEnabled = true
