// Package parwalk walks a directory tree on several goroutines, handing
// each directory to its visitor as an open descriptor with its entries'
// names, so that the visitor's per-entry calls (fstatat, linkat, mkdirat)
// resolve one name relative to it instead of a whole path. The store's
// walks over every entry of an object (the hardlink copy of a tree, the
// stat digest of the check on use) are bound by those calls, and a
// path-at-a-time walk like `cp -al` resolves every component of every
// path again.
//
// The walk does not follow symlinks, opens every directory with
// O_NOFOLLOW, and visits a directory only after its parent's visit
// returned it; the order among siblings and cousins is unspecified.
package parwalk

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Dir is one directory of the walk, valid during its visit.
type Dir struct {
	// File is the open directory; its descriptor is the base for *at calls.
	File *os.File
	// Rel is the directory's slash-separated path relative to the root,
	// "." for the root.
	Rel string
	// Names are its entries' names, sorted.
	Names []string
}

// Join returns the slash-separated path of the entry name of d.
func (d *Dir) Join(name string) string { return path.Join(d.Rel, name) }

// Walk visits the directory root and, below it, every directory a visit
// returns the name of, on up to workers goroutines at once. It returns the
// first error of a visit or of opening or reading a directory, or ctx's
// error, after every goroutine it started has ended.
func Walk(ctx context.Context, root string, workers int, visit func(ctx context.Context, d *Dir) (descend []string, err error)) error {
	q := &queue{jobs: []string{"."}}
	q.cond.L = &q.mu
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				rel, ok := q.pop()
				if !ok {
					return
				}
				var sub []string
				err := ctx.Err()
				if err == nil {
					sub, err = visitDir(ctx, root, rel, visit)
				}
				q.done(rel, sub, err)
			}
		})
	}
	wg.Wait()
	return q.err
}

func visitDir(ctx context.Context, root, rel string, visit func(context.Context, *Dir) ([]string, error)) ([]string, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	slices.Sort(names)
	return visit(ctx, &Dir{File: f, Rel: rel, Names: names})
}

// queue is the workers' shared stack of directories to visit. It is done
// when it is empty and no worker holds a directory (whose visit could add
// more), or at the first error.
type queue struct {
	mu   sync.Mutex
	cond sync.Cond
	jobs []string
	busy int
	err  error
}

func (q *queue) pop() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 && q.busy > 0 && q.err == nil {
		q.cond.Wait()
	}
	if q.err != nil || len(q.jobs) == 0 {
		return "", false
	}
	j := q.jobs[len(q.jobs)-1]
	q.jobs = q.jobs[:len(q.jobs)-1]
	q.busy++
	return j, true
}

func (q *queue) done(rel string, sub []string, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy--
	if err != nil && q.err == nil {
		q.err = err
	}
	for _, name := range sub {
		q.jobs = append(q.jobs, path.Join(rel, name))
	}
	switch {
	case q.err != nil || (q.busy == 0 && len(q.jobs) == 0):
		q.cond.Broadcast()
	case len(sub) > 1:
		q.cond.Broadcast()
	case len(sub) == 1:
		q.cond.Signal()
	}
}
