//go:build wasip1

package main

// debPackage is one package kiln.deb has unpacked into the tree: what the
// unpacker (deb_*.go) learned from the .deb and what the configure step
// (debConfigure) needs to reproduce the effects of its maintainer scripts.
// The unpacker fills every field before debConfigure runs; debConfigure
// reads them and never changes them.
type debPackage struct {
	Name    string // Package:
	Version string // Version:
	Arch    string // Architecture:
	// Control is the control file's paragraph as shipped, fields in order;
	// the dpkg status entry is made from it.
	Control []debField
	// Scripts holds the maintainer scripts and other control members dpkg
	// keeps in its info directory, by member name ("preinst", "postinst",
	// "prerm", "postrm", "config", "triggers", "templates", "shlibs",
	// "symbols"). Absent members are absent from the map.
	Scripts map[string][]byte
	// Conffiles are the absolute paths the conffiles member lists.
	Conffiles []string
	// Files are the absolute paths the package put in the tree (after
	// exclude globs), in archive order, "/." first, as dpkg's .list has them.
	Files []string
}

// debField is one control field; Value keeps continuation lines as dpkg
// wrote them (joined by "\n" with their leading space).
type debField struct {
	Name, Value string
}

// debConfigureResult says what debConfigure did for the packages it was
// given. A package in Configured had every effect of its maintainer scripts
// reproduced (or had no scripts that matter) and is recorded as "install ok
// installed"; every other package is recorded as "install ok unpacked" and
// listed in Deferred with the reason, for `dpkg --configure -a` at first boot
// or, in a container, for the build log and result.
type debConfigureResult struct {
	Configured map[string]bool
	Deferred   []debDeferred
	// Effects lists what was written, one line each ("ld.so.cache: 212
	// libraries", "alternatives: /usr/bin/awk -> /usr/bin/mawk"), for the log.
	Effects []string
}

type debDeferred struct {
	Package string
	Reason  string
}
