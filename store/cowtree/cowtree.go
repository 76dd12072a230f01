// Package cowtree is what a writable object's tree and its writer (hostfs)
// share besides the tree itself: the set of inodes the tree shares with its
// committed base (a hardlink copy-on-write tree), and the journal of the
// paths the writer touched, from which a commit re-hashes only what changed.
//
// # Contract
//
// The store makes a state directory next to the tree ([Create]) when it
// initializes the tree; the writer opens it ([Open]) and, before the first
// operation that could change a shared inode or its metadata, replaces the
// name by a private copy ([CopyUp]). A shared inode is a regular file whose
// inode number is in the set: the set is written once, at initialization,
// and never shrinks, which is safe because a copied-up inode keeps its
// number alive in the base, so no file made later can reuse it. Every path
// the writer changes is appended to the journal before the change is made
// ([State.Touch]), so a crash leaves at worst a path too many, never one too
// few. A tree written by anything but such a writer has no usable journal.
package cowtree

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// File names inside a state directory.
const (
	sharedFile  = "shared"
	journalFile = "journal"
)

// Inode flags in the shared set.
const (
	// Group marks an inode that has more than one name inside the tree (a
	// hardlink that is part of the image): copying one name up must
	// copy the whole group to one new inode, so the names stay one file.
	Group = 1 << iota
)

// ErrCorrupt: a state file does not parse.
var ErrCorrupt = errors.New("cowtree: state corrupt")

// Create writes a state directory at dir for a tree that shares the inodes
// of shared (inode number -> flags) with its base; nil means a private tree
// (only the journal is used).
func Create(dir string, shared map[uint64]uint8) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("cowtree: %w", err)
	}
	inos := make([]uint64, 0, len(shared))
	for ino := range shared {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	buf := make([]byte, 0, 9*len(inos))
	for _, ino := range inos {
		buf = binary.LittleEndian.AppendUint64(buf, ino)
		buf = append(buf, shared[ino])
	}
	if err := os.WriteFile(filepath.Join(dir, sharedFile), buf, 0o600); err != nil {
		return fmt.Errorf("cowtree: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, journalFile), nil, 0o600); err != nil {
		return fmt.Errorf("cowtree: %w", err)
	}
	return nil
}

// LoadShared reads the shared set of the state directory dir.
func LoadShared(dir string) (map[uint64]uint8, error) {
	buf, err := os.ReadFile(filepath.Join(dir, sharedFile))
	if err != nil {
		return nil, fmt.Errorf("cowtree: %w", err)
	}
	if len(buf)%9 != 0 {
		return nil, fmt.Errorf("%w: %s is %d bytes, not a multiple of 9", ErrCorrupt, filepath.Join(dir, sharedFile), len(buf))
	}
	m := make(map[uint64]uint8, len(buf)/9)
	for i := 0; i < len(buf); i += 9 {
		m[binary.LittleEndian.Uint64(buf[i:])] = buf[i+8]
	}
	return m, nil
}

// State is a writer's open view of a state directory. Its methods are safe
// for concurrent use.
type State struct {
	shared map[uint64]uint8

	// mu serializes copy-ups, so that two operations on one shared file
	// cannot both copy it and lose a write to the copy replaced second,
	// and journal appends.
	mu      sync.Mutex
	journal *os.File
}

// Open opens the state directory dir for a writer.
func Open(dir string) (*State, error) {
	shared, err := LoadShared(dir)
	if err != nil {
		return nil, err
	}
	j, err := os.OpenFile(filepath.Join(dir, journalFile), os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cowtree: %w", err)
	}
	return &State{shared: shared, journal: j}, nil
}

// Close closes the journal.
func (s *State) Close() error { return s.journal.Close() }

// Shared reports whether st is a regular file whose inode the tree shares
// with its base, and its flags.
func (s *State) Shared(st *unix.Stat_t) (bool, uint8) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink < 2 {
		return false, 0
	}
	f, ok := s.shared[st.Ino]
	return ok, f
}

// Lock and Unlock bracket a copy-up (see mu).
func (s *State) Lock()   { s.mu.Lock() }
func (s *State) Unlock() { s.mu.Unlock() }

// Touch records that the entry at rel (slash-separated, relative to the
// tree's root, "" for the root) is about to change: its content or
// metadata, or with subtree whatever the name holds (it is created,
// removed, renamed, or replaced). Its ancestors are implied. A failed
// append is returned, and the writer must then refuse the operation: a
// journal that missed a change would let a commit reuse a stale digest.
func (s *State) Touch(rel string, subtree bool) error {
	if strings.ContainsAny(rel, "\n\x00") {
		// A name with a newline cannot be a journal line: record its
		// directory's whole subtree instead.
		rel, subtree = path.Dir(rel), true
		for strings.ContainsAny(rel, "\n\x00") {
			rel = path.Dir(rel)
		}
		if rel == "." {
			rel = ""
		}
	}
	kind := "e "
	if subtree {
		kind = "s "
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.journal.WriteString(kind + rel + "\n"); err != nil {
		return fmt.Errorf("cowtree: journal: %w", err)
	}
	return nil
}

// Touched is what a journal says about one path.
type Touched struct {
	Path    string // relative, slash-separated; "" is the root
	Subtree bool   // everything at and below Path changed
}

// ReadJournal returns the paths recorded in the state directory dir, one
// per path (subtree wins), sorted by path.
func ReadJournal(dir string) ([]Touched, error) {
	f, err := os.Open(filepath.Join(dir, journalFile))
	if err != nil {
		return nil, fmt.Errorf("cowtree: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			if line != "" {
				return nil, fmt.Errorf("%w: journal ends in a partial line", ErrCorrupt)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cowtree: journal: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		kind, p, ok := strings.Cut(line, " ")
		if !ok || (kind != "e" && kind != "s") {
			return nil, fmt.Errorf("%w: journal line %q", ErrCorrupt, line)
		}
		seen[p] = seen[p] || kind == "s"
	}
	out := make([]Touched, 0, len(seen))
	for p, sub := range seen {
		out = append(out, Touched{p, sub})
	}
	slices.SortFunc(out, func(a, b Touched) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}
