package store

// FullChecks returns how many checks on use had to hash a whole tree.
func FullChecks(s *Store) int64 { return s.fullChecks.Load() }

// StatDigest is the check on use's digest of a tree (verify.go).
var StatDigest = statDigest
