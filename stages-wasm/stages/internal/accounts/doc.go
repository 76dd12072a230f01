// Package accounts edits /etc/passwd, /etc/group, /etc/shadow and
// /etc/gshadow the way shadow-utils' useradd, usermod and groupadd do, as
// text held in memory: lines are kept in their order, comments and entries
// the stage does not touch are kept byte for byte, new entries are appended,
// and new ids are chosen as useradd chooses them (after the highest id in
// use between UID_MIN and UID_MAX of the tree's /etc/login.defs).
//
// There is no locking: a stage owns its tree while it runs.
package accounts
