package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/cowtree"
	"github.com/kilnbuild/kiln/store/treecopy"
)

// Object is a tree being built: it starts as its base (a committed object,
// or empty) and becomes its own copy at the first write. Many read contexts
// or one write context may be open at a time, never both.
type Object struct {
	store *Store

	mu          sync.Mutex
	base        string   // committed id the content starts from ("" = empty)
	baseSum     string   // treesum of base
	baseLock    *os.File // shared flock on objects/<baseSum>
	work        *tempDir // tmp/obj-*: holds tree/ once initialized
	initialized bool     // tree/ exists and is the object's content
	// shared is the set of inodes tree/ shares with the base (a hardlink
	// tree, package cowtree); nil for a tree of its own.
	shared map[uint64]uint8
	// tracked: every change since the tree was initialized went through
	// hostfs, whose journal in cow/ names every path it touched, so that a
	// commit may re-hash only those.
	tracked bool
	writing bool
	readers int
	closed  bool
}

// Base returns the id of the committed object this object's content
// started from ("" for none). After a commit, that is the committed id.
func (o *Object) Base() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.base
}

func (o *Object) treePath() string { return filepath.Join(o.work.path, "tree") }

// cowPath is the state directory hostfs shares with the store (package
// cowtree): the shared inode set and the journal of touched paths.
func (o *Object) cowPath() string { return filepath.Join(o.work.path, "cow") }

// initLocked creates the object's own tree from the base. It runs once per
// base: after that the tree is the object's content. forHostfs picks the
// store's hostfs strategy, which may hardlink (copymode.go).
func (o *Object) initLocked(ctx context.Context, forHostfs bool) error {
	return o.initCheckingLocked(ctx, forHostfs, "")
}

// errStatDiffers: the walk that linked a tree from its base found the
// base's stat digest changed, so the full check decides (NewHostfs).
var errStatDiffers = errors.New("stat digest differs")

// initCheckingLocked is initLocked that, given the recorded stat digest of
// a linked base (statWant), checks the base in the walk that links the
// tree, which it then makes only if the digest is unchanged: otherwise the
// tree is removed and the error wraps errStatDiffers.
func (o *Object) initCheckingLocked(ctx context.Context, forHostfs bool, statWant string) error {
	if o.initialized {
		return nil
	}
	tree := o.treePath()
	mode := o.store.writeMode(forHostfs)
	var shared map[uint64]uint8
	if o.baseSum == "" {
		if err := os.Mkdir(tree, 0o755); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := os.Chmod(tree, 0o755); err != nil { // the umask must not decide
			return fmt.Errorf("store: %w", err)
		}
	} else {
		opts := treecopy.Options{Mode: mode}
		if mode == treecopy.Hardlink {
			shared = map[uint64]uint8{}
			opts.Shared = shared
		}
		if mode == treecopy.Hardlink {
			// Before the first link changes a ctime (verify.go).
			if err := o.store.markLinked(ctx, o.baseSum); err != nil {
				return fmt.Errorf("store: initializing from %s: %w", o.base, err)
			}
		}
		var check *statDigester
		if statWant != "" {
			check = newStatDigester(o.store.objectPath(o.baseSum), true)
			opts.Visit = check.dir
		}
		err := treecopy.Copy(ctx, o.store.objectPath(o.baseSum), tree, opts)
		if err == nil && check != nil {
			var got string
			if got, _, err = check.sum(); err == nil && got != statWant {
				err = errStatDiffers
			}
		}
		if err != nil {
			_ = fsmeta.RemoveAll(tree)
			return fmt.Errorf("store: initializing from %s: %w", o.base, err)
		}
	}
	_ = fsmeta.RemoveAll(o.cowPath()) // a previous base's
	if err := cowtree.Create(o.cowPath(), shared); err != nil {
		_ = fsmeta.RemoveAll(tree)
		return fmt.Errorf("store: initializing from %s: %w", o.base, err)
	}
	o.initialized, o.shared, o.tracked = true, shared, forHostfs
	return nil
}

// unshareLocked gives the tree inodes of its own before a plain writer
// gets it.
func (o *Object) unshareLocked(ctx context.Context) error {
	if len(o.shared) == 0 || o.store.linkedWrites {
		return nil
	}
	if err := cowtree.Unshare(ctx, o.treePath(), o.shared); err != nil {
		return fmt.Errorf("store: unsharing the tree of %s: %w", o.base, err)
	}
	o.shared = nil
	return nil
}

// WriteContext is the writable handle on an object's tree: a directory
// descriptor and its path, with what the object knows about where the tree
// came from. Close it before reading or committing the object.
type WriteContext struct {
	o       *Object
	dir     *os.File
	path    string
	base    string
	baseSum string
}

// Write initializes the object's tree from its base (once) and returns the
// write context, for any writer: the tree shares no inode with another
// object. It fails with ErrBusy while a read or write context is open.
func (o *Object) Write(ctx context.Context) (*WriteContext, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.startWriteLocked(ctx, false); err != nil {
		return nil, err
	}
	if err := o.unshareLocked(ctx); err != nil {
		o.writing = false
		return nil, err
	}
	if !o.store.linkedWrites {
		if err := checkUnshared(o.shared); err != nil {
			o.writing = false
			return nil, err
		}
	}
	o.tracked = false // a plain writer keeps no journal
	dir, err := os.OpenFile(o.treePath(), os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		o.writing = false
		return nil, fmt.Errorf("store: write: %w", err)
	}
	return &WriteContext{o: o, dir: dir, path: o.treePath(), base: o.base, baseSum: o.baseSum}, nil
}

func (o *Object) startWriteLocked(ctx context.Context, forHostfs bool) error {
	if o.closed {
		return fmt.Errorf("store: write: %w", ErrClosed)
	}
	if o.writing {
		return fmt.Errorf("store: write: %w: a write context is open", ErrBusy)
	}
	if o.readers > 0 {
		return fmt.Errorf("store: write: %w: %d read contexts are open", ErrBusy, o.readers)
	}
	if err := o.initLocked(ctx, forHostfs); err != nil {
		return err
	}
	o.writing = true
	return nil
}

// HostfsWriteContext is the write context for hostfs, the one writer that
// copies a file up before changing it: its tree may share inodes with
// committed objects (a hardlink tree), so it shows no path to write to,
// only what [hostfs.WithTreeState] and the stage engine take.
type HostfsWriteContext struct {
	o           *Object
	tree, state string
}

// WriteHostfs is Write for hostfs: the tree is initialized with the
// store's fastest safe strategy for it (copymode.go), and hostfs keeps
// the journal that lets Commit re-hash only what changed.
func (o *Object) WriteHostfs(ctx context.Context) (*HostfsWriteContext, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.startWriteLocked(ctx, true); err != nil {
		return nil, err
	}
	return &HostfsWriteContext{o: o, tree: o.treePath(), state: o.cowPath()}, nil
}

// HostfsTree returns the tree's directory and its state directory, to be
// opened only with hostfs.OpenRoot(tree, hostfs.WithTreeState(state)).
func (w *HostfsWriteContext) HostfsTree() (tree, state string) { return w.tree, w.state }

// Close ends the write; the object becomes readable and committable.
func (w *HostfsWriteContext) Close() error {
	if w.o == nil {
		return fmt.Errorf("store: write context: %w", ErrClosed)
	}
	o := w.o
	w.o = nil
	o.mu.Lock()
	o.writing = false
	o.mu.Unlock()
	return nil
}

// Dir returns an open descriptor of the tree's root directory, for
// *at(2)-style access that cannot be redirected by a renamed path.
func (w *WriteContext) Dir() *os.File { return w.dir }

// Path returns the tree's root directory.
func (w *WriteContext) Path() string { return w.path }

// Base returns the committed object the tree was initialized from and its
// treesum ("", "" for an empty start).
func (w *WriteContext) Base() (id, sum string) { return w.base, w.baseSum }

// Close ends the write; the object becomes readable and committable.
func (w *WriteContext) Close() error {
	if w.o == nil {
		return fmt.Errorf("store: write context: %w", ErrClosed)
	}
	o := w.o
	w.o = nil
	err := w.dir.Close()
	o.mu.Lock()
	o.writing = false
	o.mu.Unlock()
	return err
}

// ReadContext exposes an object's content through a read-only bind mount:
// the reader can neither write to it nor learn the store's internal paths.
type ReadContext struct {
	o          *Object
	mnt        *tempDir
	ownsObject bool // made by Store.Get: closing it closes the object
}

// Read returns a read context on the object's current content: its base
// while untouched, its own tree after a write. It fails with ErrBusy while
// a write context is open.
func (o *Object) Read(ctx context.Context) (*ReadContext, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("store: read: %w", ErrClosed)
	}
	if o.writing {
		return nil, fmt.Errorf("store: read: %w: a write context is open", ErrBusy)
	}
	src := o.treePath()
	if !o.initialized {
		if o.baseSum == "" {
			// Untouched and without base: the empty tree, made on demand.
			if err := o.initLocked(ctx, false); err != nil {
				return nil, err
			}
		} else {
			src = o.store.objectPath(o.baseSum)
		}
	}
	mnt, err := newTempDir(o.store.tmpPath(), prefixRead)
	if err != nil {
		return nil, err
	}
	target := filepath.Join(mnt.path, "tree")
	if err := os.Mkdir(target, 0o755); err != nil {
		mnt.remove()
		return nil, fmt.Errorf("store: read: %w", err)
	}
	if err := bindReadOnly(src, target); err != nil {
		mnt.remove()
		return nil, err
	}
	o.readers++
	return &ReadContext{o: o, mnt: mnt}, nil
}

// Path returns the root of the read-only tree.
func (r *ReadContext) Path() string { return filepath.Join(r.mnt.path, "tree") }

// Close unmounts the tree and, for a context made by Store.Get, releases the
// object too.
func (r *ReadContext) Close() error {
	if r.o == nil {
		return fmt.Errorf("store: read context: %w", ErrClosed)
	}
	o := r.o
	r.o = nil
	err := unmount(r.Path())
	if rerr := r.mnt.remove(); err == nil {
		err = rerr
	}
	o.mu.Lock()
	o.readers--
	o.mu.Unlock()
	if r.ownsObject {
		if cerr := o.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Close releases the object: its work directory is removed and its base is
// no longer held. Open contexts must be closed first.
func (o *Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("store: object: %w", ErrClosed)
	}
	if o.writing || o.readers > 0 {
		return fmt.Errorf("store: close: %w: %d readers, writer open: %v", ErrBusy, o.readers, o.writing)
	}
	o.closed = true
	o.releaseBase()
	return o.work.remove()
}

func (o *Object) releaseBase() {
	if o.baseLock != nil {
		o.baseLock.Close()
		o.baseLock = nil
	}
}

// initForHostfs initializes the tree for hostfs (NewHostfs), checking the
// base in the walk if statWant is its recorded stat digest.
func (o *Object) initForHostfs(ctx context.Context, statWant string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.initCheckingLocked(ctx, true, statWant)
}
