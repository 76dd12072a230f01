package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/crashpoint"
	"github.com/kilnbuild/kiln/store/mountns"
	"github.com/kilnbuild/kiln/store/treecopy"
	"github.com/kilnbuild/kiln/store/treesum"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrNotFound: no ref or object of that id.
	ErrNotFound = errors.New("not found")
	// ErrBusy: the operation breaks the policy "many readers or one
	// writer": a write while reading, a read while writing, a second
	// writer, or a commit while a context is open.
	ErrBusy = errors.New("object busy")
	// ErrClosed: the object, context or store was already cleaned up.
	ErrClosed = errors.New("already closed")
	// ErrInvalidID: the id could not name a ref.
	ErrInvalidID = errors.New("invalid object id")
	// ErrLocked: a lock held by another process did not come free in time.
	ErrLocked = errors.New("locked by another process")
)

// Store is an open object store. Its methods are safe for concurrent use,
// and several processes may use one store root at the same time.
type Store struct {
	root     string
	copyMode CopyMode
	// reflinkOK caches whether the filesystem has reflinks (copymode.go).
	reflinkOnce sync.Once
	reflinkOK   bool
	// linkedWrites, for the store's own tests only, hands hardlinked trees
	// to plain write contexts, so the whole suite runs on shared inodes.
	linkedWrites bool
	objects      *os.File // objects/, flocked by commits (shared) and gc (exclusive)
	recovered    int
	noRecovery   bool
	closed       bool
	fullChecks   atomic.Int64 // checks on use that had to hash a whole tree
	statChecks   atomic.Int64 // checks on use that walked a tree of their own
	// incrementalCommits counts commits that re-hashed only what hostfs
	// journaled (index.go).
	incrementalCommits atomic.Int64
	indexes            indexCache // index.go
}

// Option configures Open.
type Option func(*Store) error

// WithoutRecovery opens the store without removing leftovers of dead
// processes from tmp/, so that Fsck can report them.
func WithoutRecovery() Option {
	return func(s *Store) error {
		s.noRecovery = true
		return nil
	}
}

// WithCopyMode sets how write contexts initialize trees from their base.
func WithCopyMode(m CopyMode) Option {
	return func(s *Store) error {
		if m < CopyAuto || m > CopyHardlink {
			return fmt.Errorf("store: unknown copy mode %d", int(m))
		}
		s.copyMode = m
		return nil
	}
}

// Open opens the store at root, creating it if needed, and removes
// leftovers in tmp/ that no live process holds (Recovered says how many).
// The process must be in kiln's private mount namespace (mountns.Enter),
// so that the store's bind mounts die with it.
func Open(ctx context.Context, root string, opts ...Option) (*Store, error) {
	if err := mountns.Check(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{root: abs}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if err := makePrivate(abs); err != nil {
		return nil, err
	}
	if s.objects, err = openDir(filepath.Join(abs, dirObjects)); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		s.objects.Close()
		return nil, err
	}
	if !s.noRecovery {
		if s.recovered, err = cleanTmp(s.tmpPath()); err != nil {
			s.objects.Close()
			return nil, err
		}
	}
	return s, nil
}

// privateDirs are the store's directories: each is created 0700, and an
// existing one with a looser mode is tightened. A committed tree keeps its
// own root mode (it is part of its treesum), so what keeps other local users
// away from a setuid binary, a device node or a 1777 /tmp inside it is that
// every directory leading to it is private.
var privateDirs = append([]string{"", dirObjects, dirRefs, dirTmp, dirIndex}, KnownDirs...)

func makePrivate(root string) error {
	for _, d := range privateDirs {
		path := filepath.Join(root, d)
		if err := os.MkdirAll(path, 0o700); err != nil {
			return fmt.Errorf("store: opening %s: %w", root, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return fmt.Errorf("store: opening %s: %w", root, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("store: opening %s: %s is not a directory", root, path)
		}
		if st.Mode&07777 != 0o700 {
			if err := unix.Chmod(path, 0o700); err != nil {
				return fmt.Errorf("store: making %s private: %w", path, err)
			}
		}
	}
	return nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

// Recovered returns how many leftovers of dead processes Open removed from
// tmp/.
func (s *Store) Recovered() int { return s.recovered }

// Close releases the store. Objects must be closed first.
func (s *Store) Close() error {
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	return s.objects.Close()
}

// Contains reports whether id names a committed object.
func (s *Store) Contains(id string) bool {
	_, err := s.resolve(id)
	return err == nil
}

// Verify runs the check every use makes (see acquire) on the committed
// object id: nil if it is stored and intact, an error wrapping ErrNotFound
// if it is not stored, ErrDamaged if it is damaged, in which case its refs
// are removed and Contains reports false from then on. A build that asks
// Verify rather than Contains before skipping work rebuilds a damaged
// object instead of failing on it.
func (s *Store) Verify(ctx context.Context, id string) error {
	_, lock, err := s.acquire(ctx, id)
	if err != nil {
		return err
	}
	return lock.Close()
}

// resolve returns the treesum that refs/<id> points at.
func (s *Store) resolve(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	target, err := os.Readlink(s.refPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("store: object %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: object %s: %w", id, err)
	}
	sum := filepath.Base(target)
	if target != refTarget(sum) || !validSum.MatchString(sum) {
		return "", fmt.Errorf("store: ref %s points at %q, not into objects/", id, target)
	}
	if _, err := os.Lstat(s.objectPath(sum)); err != nil {
		return "", fmt.Errorf("store: object %s (%s): %w", id, sum, ErrNotFound)
	}
	return sum, nil
}

// acquire resolves id, takes a shared lock on its object directory, so gc
// cannot remove it while it is used, and checks it (verify.go): a damaged
// object, or a ref pointing at an object id was never committed to, fails
// with ErrDamaged, and the refs that lead to it are dropped so that the
// next build rebuilds it instead of failing again. Holding objects/ shared
// during the lookup keeps gc from removing the object between the lookup
// and the lock; the check runs after objects/ is released, so gc does not
// wait for it.
func (s *Store) acquire(ctx context.Context, id string) (string, *os.File, error) {
	sum, f, err := s.acquireUnchecked(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if err := s.checkErr(id, sum, s.verifyObject(ctx, sum)); err != nil {
		f.Close()
		return "", nil, err
	}
	s.touch(id)
	return sum, f, nil
}

// acquireUnchecked is acquire up to the check of the object's content,
// which the caller makes (or has a walk make, NewHostfs) before the
// object is used, passing its result through checkErr, then touches id.
func (s *Store) acquireUnchecked(ctx context.Context, id string) (string, *os.File, error) {
	sum, f, err := s.lookup(ctx, id)
	if err != nil {
		return "", nil, err
	}
	ok, err := s.refRecorded(sum, id, true)
	if err == nil && !ok {
		err = fmt.Errorf("%w: ref %s points at objects/%s, which it was never committed to", ErrDamaged, id, sum)
		_ = s.dropRef(id, sum)
	}
	if err != nil {
		f.Close()
		return "", nil, useErr(id, err)
	}
	return sum, f, nil
}

// checkErr is what the use of id (objects/<sum>) returns for err, the
// result of its check: a damaged object's refs are dropped.
func (s *Store) checkErr(id, sum string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrDamaged) {
		_, _ = s.dropRefs(sum)
	}
	return useErr(id, err)
}

func useErr(id string, err error) error {
	if errors.Is(err, ErrDamaged) {
		return fmt.Errorf("store: object %s: %w (its refs were removed: the next build rebuilds it; kiln store fsck --repair removes it)", id, err)
	}
	return fmt.Errorf("store: object %s: %w", id, err)
}

func (s *Store) lookup(ctx context.Context, id string) (string, *os.File, error) {
	release, err := s.lockObjects(ctx, unix.LOCK_SH)
	if err != nil {
		return "", nil, err
	}
	defer release()
	sum, err := s.resolve(id)
	if err != nil {
		return "", nil, err
	}
	f, err := openDir(s.objectPath(sum))
	if err != nil {
		return "", nil, fmt.Errorf("store: object %s: %w", id, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("store: object %s: %w", id, err)
	}
	return sum, f, nil
}

// touch records a use of ref id for gc's least-recently-used order. The
// symlink's own mtime is the record: refs are tiny and already there.
func (s *Store) touch(id string) {
	now := time.Now()
	ts := []unix.Timespec{unix.NsecToTimespec(now.UnixNano()), unix.NsecToTimespec(now.UnixNano())}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, s.refPath(id), ts, unix.AT_SYMLINK_NOFOLLOW)
}

// New returns a new object whose content starts as a copy of the committed
// object base ("" for an empty tree). Nothing is copied until the first
// write. The object holds a work directory under tmp/ until Close.
func (s *Store) New(ctx context.Context, base string) (*Object, error) {
	if s.closed {
		return nil, ErrClosed
	}
	o := &Object{store: s, base: base}
	if base != "" {
		sum, lock, err := s.acquire(ctx, base)
		if err != nil {
			return nil, err
		}
		o.baseSum, o.baseLock = sum, lock
	}
	work, err := newTempDir(s.tmpPath(), prefixObject)
	if err != nil {
		o.releaseBase()
		return nil, err
	}
	o.work = work
	return o, nil
}

// NewHostfs is New for an object whose next writer is hostfs: the tree
// [Object.WriteHostfs] writes is made now, with the store's hostfs
// strategy. Where that hardlinks the base, the base's check on use (which
// New makes in a walk of its own) is made in the walk that makes the links:
// a build that starts from a checkpoint walks the tree once, as `cp -al`
// does. A damaged base fails it as it fails New, and nothing is left.
func (s *Store) NewHostfs(ctx context.Context, base string) (*Object, error) {
	if s.closed {
		return nil, ErrClosed
	}
	if base == "" || s.writeMode(true) != treecopy.Hardlink {
		o, err := s.New(ctx, base)
		if err != nil {
			return nil, err
		}
		if err := o.initForHostfs(ctx, ""); err != nil {
			o.Close()
			return nil, err
		}
		return o, nil
	}
	sum, lock, err := s.acquireUnchecked(ctx, base)
	if err != nil {
		return nil, err
	}
	o := &Object{store: s, base: base, baseSum: sum, baseLock: lock}
	if o.work, err = newTempDir(s.tmpPath(), prefixObject); err != nil {
		o.releaseBase()
		return nil, err
	}
	// Only a base already linked has a digest in the linked form; the
	// first tree linked from a base is made after the check New makes.
	err = errStatDiffers
	if want, rerr := os.ReadFile(filepath.Join(s.indexPath(sum), indexStat)); rerr == nil && s.linked(sum) {
		err = o.initForHostfs(ctx, string(want))
	}
	if err != nil && ctx.Err() == nil {
		// The digest differs, there is none, or the walk failed (which
		// damage can cause): the check every use makes decides, as in
		// New, and a base found intact is linked again.
		if cerr := s.checkErr(base, sum, s.verifyObject(ctx, sum)); cerr != nil {
			o.Close()
			return nil, cerr
		}
		if errors.Is(err, errStatDiffers) {
			err = o.initForHostfs(ctx, "")
		}
	}
	if err != nil {
		o.Close()
		return nil, err
	}
	s.touch(base)
	return o, nil
}

// Get returns a read context on the committed object id. Closing the
// context releases everything Get took.
func (s *Store) Get(ctx context.Context, id string) (*ReadContext, error) {
	if id == "" {
		return nil, fmt.Errorf("store: get: %w: empty id", ErrInvalidID)
	}
	o, err := s.New(ctx, id)
	if err != nil {
		return nil, err
	}
	r, err := o.Read(ctx)
	if err != nil {
		o.Close()
		return nil, err
	}
	r.ownsObject = true
	return r, nil
}

// Commit stores obj's current content as the object id and returns its
// treesum. The tree is renamed into objects/<treesum>; if the same content
// is stored already, that copy is kept and obj's is dropped. refs/<id> is
// replaced atomically. Afterwards obj starts over with id as its base and
// stays usable: its next write starts from the committed tree.
func (s *Store) Commit(ctx context.Context, obj *Object, id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	obj.mu.Lock()
	defer obj.mu.Unlock()
	if obj.closed {
		return "", fmt.Errorf("store: commit %s: %w", id, ErrClosed)
	}
	if obj.readers > 0 || obj.writing {
		return "", fmt.Errorf("store: commit %s: %w: %d readers, writer open: %v", id, ErrBusy, obj.readers, obj.writing)
	}
	if !obj.initialized && obj.base == "" {
		// An untouched object without base is the empty tree.
		if err := obj.initLocked(ctx, false); err != nil {
			return "", err
		}
	}
	// Hash before taking the store lock: gc waits for that lock, and
	// hashing a large tree takes a while.
	sum := obj.baseSum
	var ix *treesum.Index
	if obj.initialized {
		var err error
		if sum, ix, err = s.hashTree(ctx, obj); err != nil {
			return "", fmt.Errorf("store: commit %s: %w", id, err)
		}
	}
	release, err := s.lockObjects(ctx, unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer release()
	if obj.initialized {
		if obj.shared != nil {
			// Its files are its base's: linked before the digest is
			// recorded (verify.go).
			if err := os.MkdirAll(s.indexPath(sum), 0o700); err != nil {
				return "", fmt.Errorf("store: commit %s: index: %w", id, err)
			}
			if err := os.WriteFile(filepath.Join(s.indexPath(sum), indexLinked), nil, 0o600); err != nil {
				return "", fmt.Errorf("store: commit %s: index: %w", id, err)
			}
		}
		linkedFrom := ""
		if obj.shared != nil && obj.tracked {
			linkedFrom = obj.baseSum
		}
		if err := s.storeTree(ctx, obj.treePath(), sum, linkedFrom, ix); err != nil {
			return "", fmt.Errorf("store: commit %s: %w", id, err)
		}

	} else if _, err := os.Lstat(s.objectPath(sum)); err != nil {
		// The base is locked by obj, so gc cannot have removed it.
		return "", fmt.Errorf("store: commit %s: base %s: %w", id, obj.base, err)
	}
	if err := s.recordRef(sum, id); err != nil {
		return "", fmt.Errorf("store: commit %s: %w", id, err)
	}
	if err := s.setRef(obj.work.path, id, sum); err != nil {
		return "", fmt.Errorf("store: commit %s: %w", id, err)
	}
	// Start over on the committed content. Lock it before objects/ is
	// released, so gc cannot take it away in between.
	lock, err := openDir(s.objectPath(sum))
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_SH)
	}
	if err != nil {
		return "", fmt.Errorf("store: commit %s: %w", id, err)
	}
	obj.releaseBase()
	// storeTree moved or removed the tree; the next write copies anew.
	obj.base, obj.baseSum, obj.baseLock, obj.initialized = id, sum, lock, false
	obj.shared, obj.tracked = nil, false
	return sum, nil
}

// storeTree renames tree to objects/<sum> and records its stat digest.
// rename(2) refuses to replace a non-empty directory (EEXIST on some
// filesystems, ENOTEMPTY on others): then the content is stored already and
// tree is dropped, unless the stored copy fails its check on use, in which
// case it is moved out and replaced, so that rebuilding a damaged object
// repairs it instead of pointing the new ref at the damage again.
//
// linkedFrom, when set, is the base a linked tree was made from and ix the
// index Update made for it: the stat digest then takes the unchanged files'
// lines from the base's (statIncremental) instead of looking at every file.
func (s *Store) storeTree(ctx context.Context, tree, sum, linkedFrom string, ix *treesum.Index) error {
	// The tree's data must be on disk before its name says it is stored:
	// after a power loss, an object under a valid name with empty files
	// would be served to every later build. One syncfs flushes the whole
	// tree (fsync per file would cost a call per file).
	// The indexes go before the syncfs too, so that it flushes them with
	// the tree and the fsyncs below have nothing left to wait for. An index
	// without its object is harmless (fsck drops it); one of another tree
	// with the same treesum is skipped.
	var files []statRec
	lines := false
	if _, err := os.Lstat(s.objectPath(sum)); errors.Is(err, os.ErrNotExist) && ix != nil {
		if err := s.writeTreeIndex(sum, ix); err != nil {
			return err
		}
		if linkedFrom != "" && s.linked(sum) {
			var from *fileLinesFrom
			var err error
			if files, from, lines, err = s.fileLines(ctx, tree, linkedFrom, ix); err != nil {
				return err
			}
			if lines {
				if err := s.writeStatFiles(sum, files, from); err != nil {
					return err
				}
			}
		}
	}
	crashpoint.Hit("store.commit.before-syncfs")
	if err := unix.Syncfs(int(s.objects.Fd())); err != nil {
		return fmt.Errorf("syncfs: %w", err)
	}
	crashpoint.Hit("store.commit.before-rename")
	for attempt := 0; ; attempt++ {
		err := os.Rename(tree, s.objectPath(sum))
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
		verr := s.verifyObject(ctx, sum)
		if verr == nil || !errors.Is(verr, ErrDamaged) || attempt > 0 {
			if rerr := fsmeta.RemoveAll(tree); verr == nil {
				verr = rerr
			}
			return verr
		}
		if err := s.quarantine(sum, false); err != nil {
			return err
		}
	}
	crashpoint.Hit("store.commit.after-rename")
	// The rename must be durable before a ref points at it.
	if err := unix.Fsync(int(s.objects.Fd())); err != nil {
		return err
	}
	// A new object: no ref can point at it yet, so its ref records start
	// empty rather than adopting (which scans every ref).
	if err := os.MkdirAll(filepath.Join(s.indexPath(sum), indexRefs), 0o700); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	// After the rename: renaming changes the root's ctime.
	if lines {
		d, err := s.statFromLines(ctx, sum, ix, files)
		if err != nil {
			return err
		}
		return writeIndexFile(filepath.Join(s.indexPath(sum), indexStat), []byte(d))
	}
	return s.recordStat(ctx, sum)
}

// setRef points refs/<id> at objects/<sum>: a new symlink made in the
// caller's locked work directory, then renamed over the old ref.
func (s *Store) setRef(work, id, sum string) error {
	tmp := filepath.Join(work, "ref")
	_ = os.Remove(tmp)
	if err := os.Symlink(refTarget(sum), tmp); err != nil {
		return err
	}
	crashpoint.Hit("store.ref.before-rename")
	if err := os.Rename(tmp, s.refPath(id)); err != nil {
		return err
	}
	refs, err := openDir(filepath.Join(s.root, dirRefs))
	if err != nil {
		return err
	}
	defer refs.Close()
	return unix.Fsync(int(refs.Fd()))
}

// Refs returns every ref and the treesum it points at ("" if dangling).
func (s *Store) Refs() (map[string]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, dirRefs))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	refs := make(map[string]string, len(entries))
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(s.root, dirRefs, e.Name()))
		if err != nil {
			refs[e.Name()] = ""
			continue
		}
		if sum := filepath.Base(target); target == refTarget(sum) {
			refs[e.Name()] = sum
		} else {
			refs[e.Name()] = ""
		}
	}
	return refs, nil
}

// Export copies the committed object id to dst, which must not exist,
// keeping everything the store keeps (reflinks where the filesystem allows).
func (s *Store) Export(ctx context.Context, id, dst string) error {
	sum, lock, err := s.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := copyTree(ctx, s.plainMode(), s.objectPath(sum), dst); err != nil {
		return fmt.Errorf("store: exporting %s to %s: %w", id, dst, err)
	}
	return nil
}
