// Package wasmmeta reads and writes the "kiln.stages" custom section that
// makes a stage module describe itself: the name, one-line summary and
// option schema of every stage the module provides (docs/stages.md, "The
// kiln.stages section").
//
// Read parses untrusted bytes (a user's --stage-path module), so it walks
// the module's section headers only, bounds every length by the input, and
// never trusts a size it has not checked.
package wasmmeta
