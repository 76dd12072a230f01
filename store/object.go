package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
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
	writing     bool
	readers     int
	closed      bool
}

// Base returns the id of the committed object this object's content
// started from ("" for none). After a commit, that is the committed id.
func (o *Object) Base() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.base
}

func (o *Object) treePath() string { return filepath.Join(o.work.path, "tree") }

// initLocked creates the object's own tree, copying the base into it. It
// runs once per base: after that the tree is the object's content.
func (o *Object) initLocked(ctx context.Context) error {
	if o.initialized {
		return nil
	}
	tree := o.treePath()
	if o.baseSum == "" {
		if err := os.Mkdir(tree, 0o755); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := os.Chmod(tree, 0o755); err != nil { // the umask must not decide
			return fmt.Errorf("store: %w", err)
		}
	} else if err := copyTree(ctx, o.store.copyMode, o.store.objectPath(o.baseSum), tree); err != nil {
		_ = fsmeta.RemoveAll(tree)
		return fmt.Errorf("store: initializing from %s: %w", o.base, err)
	}
	o.initialized = true
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
// write context. It fails with ErrBusy while a read or write context is
// open.
func (o *Object) Write(ctx context.Context) (*WriteContext, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("store: write: %w", ErrClosed)
	}
	if o.writing {
		return nil, fmt.Errorf("store: write: %w: a write context is open", ErrBusy)
	}
	if o.readers > 0 {
		return nil, fmt.Errorf("store: write: %w: %d read contexts are open", ErrBusy, o.readers)
	}
	if err := o.initLocked(ctx); err != nil {
		return nil, err
	}
	dir, err := os.OpenFile(o.treePath(), os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("store: write: %w", err)
	}
	o.writing = true
	return &WriteContext{o: o, dir: dir, path: o.treePath(), base: o.base, baseSum: o.baseSum}, nil
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
			if err := o.initLocked(ctx); err != nil {
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
