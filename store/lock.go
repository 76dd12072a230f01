package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
)

// Locks are flock(2) locks on directories, so they are shared by every
// process that opens the store, and die with their holder: a crashed kiln
// never leaves a stale lock behind.
//
//	objects/            shared by commits and by New while resolving a ref;
//	                    exclusive for gc, so nothing is removed mid-commit
//	objects/<treesum>/  shared by every object that uses it as its base;
//	                    gc removes only what it can lock exclusively
//	tmp/<dir>/          exclusive by the process using it; cleanup removes
//	                    only what it can lock
//	tmp/lock-<id>/      exclusive by the process making object id (LockID),
//	                    removed by it before it unlocks

func openDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// tryLock takes a flock without blocking; it reports false if another
// process holds a conflicting lock.
func tryLock(f *os.File, how int) (bool, error) {
	err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return true, nil
}

// lockWait takes a flock, polling so that ctx can end the wait: flock(2)
// itself cannot be interrupted by a context.
func lockWait(ctx context.Context, f *os.File, how int) error {
	delay := time.Millisecond
	start := time.Now()
	for {
		ok, err := tryLock(f, how)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waited %s for %s: %w", ErrLocked, time.Since(start).Round(time.Millisecond), f.Name(), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// tempDir is a directory under tmp/ held with an exclusive lock for as long
// as it is in use.
type tempDir struct {
	f    *os.File
	path string
}

// newTempDir makes and locks a fresh directory under tmp/. Between mkdir and
// flock another process's cleanup may remove the directory; a removed
// directory has no links left, which is checked after locking.
func newTempDir(tmp, prefix string) (*tempDir, error) {
	for range 10 {
		path, err := os.MkdirTemp(tmp, prefix)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		f, err := openDir(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: flock %s: %w", path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		if st.Nlink == 0 {
			f.Close()
			continue
		}
		return &tempDir{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("store: could not keep a temporary directory in %s: removed by a concurrent cleanup 10 times", tmp)
}

// remove deletes the directory and everything in it, then drops the lock.
func (d *tempDir) remove() error {
	err := fsmeta.RemoveAll(d.path)
	d.f.Close()
	if err != nil {
		return fmt.Errorf("store: removing %s: %w", d.path, err)
	}
	return nil
}

// cleanTmp removes every entry of tmp/ that no live process holds and
// returns how many it removed.
func cleanTmp(tmp string) (int, error) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	n := 0
	for _, e := range entries {
		path := filepath.Join(tmp, e.Name())
		if !e.IsDir() {
			// Nothing but locked directories is made under tmp/; a stray
			// file has no owner that could hold it.
			if err := os.Remove(path); err == nil {
				n++
			}
			continue
		}
		f, err := openDir(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // its owner finished meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("store: %w", err)
		}
		ok, err := tryLock(f, unix.LOCK_EX)
		if err != nil || !ok {
			f.Close()
			if err != nil {
				return n, err
			}
			continue
		}
		// A read mount of a dead process survives only if that process
		// shared this mount namespace (a child of this kiln): detach it.
		_ = unix.Unmount(filepath.Join(path, "tree"), unix.MNT_DETACH)
		err = fsmeta.RemoveAll(path)
		f.Close()
		if err != nil {
			return n, fmt.Errorf("store: removing leftover %s: %w", path, err)
		}
		n++
	}
	return n, nil
}

// lockObjects takes the store-wide lock on objects/ through a descriptor of
// its own: flock locks belong to an open file description, so two
// goroutines sharing one descriptor would release each other's lock.
func (s *Store) lockObjects(ctx context.Context, how int) (release func(), err error) {
	f, err := openDir(filepath.Join(s.root, dirObjects))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := lockWait(ctx, f, how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// prefixLock names the directories LockID locks. A NewTempDir("lock")
// directory of the same name (its digits equal to an id) would only make
// LockID wait for its owner: it is locked while it exists.
const prefixLock = "lock-"

// LockID takes an exclusive lock named by id, shared by every process using
// the store, and returns the function that drops it. Builds take it before
// making the object id, so that of two builds making the same object one
// makes it and the other waits and then finds it stored. waiting, if not
// nil, is called once when another process holds the lock, before the wait.
//
// The lock is a directory under tmp/, so that it dies with its holder and
// a crash leaves at most an unlocked leftover that the next Open removes.
// Its holder removes it before unlocking; whoever waited on the removed
// directory then sees it has no links left and tries again, so two
// processes never believe they hold the same id.
func (s *Store) LockID(ctx context.Context, id string, waiting func()) (unlock func(), err error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	name := id
	if len(prefixLock)+len(name) > 255 {
		h := sha256.Sum256([]byte(id))
		name = hex.EncodeToString(h[:])
	}
	path := filepath.Join(s.tmpPath(), prefixLock+name)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("store: lock %s: %w", id, err)
		}
		f, err := openDir(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // its holder finished, or a cleanup took it
		}
		if err != nil {
			return nil, fmt.Errorf("store: lock %s: %w", id, err)
		}
		ok, err := tryLock(f, unix.LOCK_EX)
		if err == nil && !ok {
			if waiting != nil {
				waiting()
				waiting = nil
			}
			err = lockWait(ctx, f, unix.LOCK_EX)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("store: lock %s: %w", id, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: lock %s: %w", id, err)
		}
		if st.Nlink == 0 {
			f.Close()
			continue
		}
		return func() {
			// While it is locked no one else removes it, so path is
			// still this directory.
			_ = os.Remove(path)
			f.Close()
		}, nil
	}
}

// Hold keeps a committed object from being removed by gc, in any process,
// until Release: a build holds what it is going to export from the moment
// it finds or commits it.
type Hold struct {
	f   *os.File
	id  string
	sum string
}

// Hold takes a hold on the committed object id. It fails with ErrNotFound
// if the store lacks it.
func (s *Store) Hold(ctx context.Context, id string) (*Hold, error) {
	if s.closed {
		return nil, ErrClosed
	}
	sum, f, err := s.acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Hold{f: f, id: id, sum: sum}, nil
}

// ID returns the held object's id.
func (h *Hold) ID() string { return h.id }

// Sum returns the held object's treesum.
func (h *Hold) Sum() string { return h.sum }

// Release drops the hold.
func (h *Hold) Release() error {
	if h.f == nil {
		return fmt.Errorf("store: hold on %s: %w", h.id, ErrClosed)
	}
	err := h.f.Close()
	h.f = nil
	return err
}
