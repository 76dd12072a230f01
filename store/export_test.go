package store

// FullChecks returns how many checks on use had to hash a whole tree.
func FullChecks(s *Store) int64 { return s.fullChecks.Load() }
