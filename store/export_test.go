package store

// FullChecks returns how many checks on use had to hash a whole tree.
func FullChecks(s *Store) int64 { return s.fullChecks.Load() }

// StatChecks returns how many checks on use walked a tree of their own
// (not the walk of NewHostfs's hardlink copy).
func StatChecks(s *Store) int64 { return s.statChecks.Load() }

// StatDigest is the check on use's digest of a tree (verify.go).
var StatDigest = statDigest

// WithLinkedWrites hands plain write contexts hardlinked trees, so that the
// store suite runs on trees that share inodes with their base. Only tests
// whose writers never change a file in place may use it (storetest's
// helpers replace files instead).
func WithLinkedWrites() Option {
	return func(s *Store) error {
		s.linkedWrites = true
		return nil
	}
}

// IncrementalCommits returns how many commits re-hashed only what hostfs
// journaled.
func IncrementalCommits(s *Store) int64 { return s.incrementalCommits.Load() }
