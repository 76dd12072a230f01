// Package store is kiln's content-addressed, copy-on-write object store of
// filesystem trees.
//
// # Vocabulary
//
// An object is a tree being built. It is made by [Store.New] with an
// optional base, the id of a committed object. A write context
// ([Object.Write]) initializes the object's own tree from the base, once,
// and hands out a writable handle; until then nothing is copied. A read
// context ([Object.Read], [Store.Get]) shows the current content (the base
// while the object is untouched, its own tree after a write) through a
// read-only bind mount. Many read contexts or one write context may be open
// at a time, never both; breaking that, or using anything after Close,
// fails with [ErrBusy] or [ErrClosed].
//
// [Store.Commit] computes the tree's treesum (package treesum),
// renames the tree to objects/<treesum> (keeping the stored one if the same
// content is there already) and points refs/<id> at it. The object then
// starts over with id as its base, so committing is also taking a snapshot:
// the next write copies the committed tree.
//
// # Layout
//
//	objects/<treesum>/  committed trees, never changed after the rename
//	refs/<id>           symlink to ../objects/<treesum>
//	index/<treesum>/    what the check on use compares (stat, refs/<id>),
//	                    the treesum index (tree), and for objects that share
//	                    inodes (linked) their files' stat lines (files)
//	tmp/                every temporary directory, each flocked by its user;
//	                    an object's holds tree/ and cow/ (package cowtree)
//
// # Strategies
//
// A plain write context ([Object.Write]) gets a tree of its own. A hostfs
// write context ([Object.WriteHostfs]) gets the fastest safe one: reflinks
// where the filesystem has them, else hardlinks to the base's files that
// hostfs copies up before changing (copymode.go), and its commit re-hashes
// only what hostfs journaled (index.go).
//
// Every directory of the store is 0700 ([Open] tightens looser ones): a
// committed tree keeps its own modes, setuid bits, device nodes and 1777
// directories included, so only the directories leading to it keep other
// local users out. Read contexts are mounted read-only, nosuid and nodev.
//
// # Verification
//
// Every use of a committed object (a base for [Store.New], [Store.Get],
// [Store.Export]) checks it first, cheaply: a digest of its entries'
// metadata, mtimes and ctimes recorded at commit, and the full treesum only
// when that differs. A damaged object fails with [ErrDamaged] and loses its
// refs, so the next build rebuilds it; [Store.Fsck] hashes everything, and
// with [Repair] removes what is damaged.
//
// # Processes
//
// Several processes may share a store. Commits and lookups hold objects/
// with a shared flock and gc holds it exclusively; every object used as a
// base or read is held shared, and gc removes only what it can lock
// exclusively. [Open] removes leftovers in tmp/ that no live process holds.
// Bind mounts are made only inside kiln's private mount namespace
// (package mountns), so they vanish with the process.
//
// # Example
//
//	obj, _ := st.New(ctx, "")            // empty base
//	w, _ := obj.Write(ctx)               // tree exists from here on
//	os.WriteFile(filepath.Join(w.Path(), "hello"), []byte("hi\n"), 0o644)
//	w.Close()
//	sum, _ := st.Commit(ctx, obj, "hello-v1")
//	r, _ := st.Get(ctx, "hello-v1")      // read-only view of objects/<sum>
//	defer r.Close()
package store
