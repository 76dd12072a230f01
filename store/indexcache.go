package store

import (
	"sync"

	"github.com/kilnbuild/kiln/store/treesum"
)

// indexCache keeps the indexes of the objects this store committed or read
// last, so that the next commit from one of them (a build's next stage, in
// the same process) neither reads nor checks it again: a commit after a
// one-file change in a 40,000-file tree spent a third of its time there.
// What it holds is what this process wrote or read and checked, and an
// object's tree index depends on its treesum alone, so it is as good as
// the stored one. Its file lines are what this process recorded last; if
// another process records them anew meanwhile, a difference written from
// these may not match the base it names, which costs the next check on use
// a full hash, never a wrong sum (lines are not part of the treesum).
type indexCache struct {
	mu      sync.Mutex
	entries []cachedIndex // most recently used first
}

// indexCacheSize covers a build's last commit and the base a series of
// stages starts from, with room to spare: each entry holds an index of
// about 100 bytes per entry of its tree.
const indexCacheSize = 4

type cachedIndex struct {
	sum        string
	tree       *treesum.Index // nil: not known
	files      []statRec      // nil: not known
	filesDepth int
}

// get returns what is cached for sum (zero when nothing is).
func (c *indexCache) get(sum string) cachedIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.sum == sum {
			copy(c.entries[1:i+1], c.entries[:i])
			c.entries[0] = e
			return e
		}
	}
	return cachedIndex{}
}

func (c *indexCache) update(sum string, f func(*cachedIndex)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := cachedIndex{sum: sum}
	for i := range c.entries {
		if c.entries[i].sum == sum {
			e = c.entries[i]
			c.entries = append(c.entries[:i], c.entries[i+1:]...)
			break
		}
	}
	f(&e)
	c.entries = append([]cachedIndex{e}, c.entries...)
	if len(c.entries) > indexCacheSize {
		c.entries = c.entries[:indexCacheSize]
	}
}

func (c *indexCache) putTree(sum string, ix *treesum.Index) {
	c.update(sum, func(e *cachedIndex) { e.tree = ix })
}

func (c *indexCache) putFiles(sum string, files []statRec, depth int) {
	c.update(sum, func(e *cachedIndex) { e.files, e.filesDepth = files, depth })
}
