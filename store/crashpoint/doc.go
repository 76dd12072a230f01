// Package crashpoint marks the places where a crash would hurt most (a
// commit between its syscalls, a copy half done, a download half written)
// so that the crash suite can kill kiln exactly there.
//
// Normal builds compile Hit to nothing. A kiln built with the kilncrash
// build tag (go build -tags kilncrash) reads KILN_CRASH_AT=NAME or
// KILN_CRASH_AT=NAME:N and kills itself with SIGKILL at the Nth call (the
// first without N) of Hit(NAME), after printing "kiln: crashpoint NAME:N"
// on standard error so that the test knows the kill was the point's.
//
// Names are dotted, package first: "store.commit.before-rename".
package crashpoint
