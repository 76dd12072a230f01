//go:build wasip1

package main

import (
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/debfmt"
)

// The Debian formats are parsed by internal/debfmt, which is fuzzed
// natively; these are its names in the stage.
type (
	relation   = debfmt.Relation
	pathFilter = debfmt.PathFilter
)

var (
	parseRelations  = debfmt.ParseRelations
	formatRelations = debfmt.FormatRelations
	newPathFilter   = debfmt.NewPathFilter
)

// parseParagraphs is debfmt.ParseParagraphs giving the debField of
// deb_types.go.
func parseParagraphs(text string) ([][]debField, error) {
	paras, err := debfmt.ParseParagraphs(text)
	if err != nil {
		return nil, err
	}
	out := make([][]debField, len(paras))
	for i, p := range paras {
		out[i] = make([]debField, len(p))
		for j, f := range p {
			out[i][j] = debField(f)
		}
	}
	return out, nil
}

// field returns the value of the named field (field names are case-blind).
func field(fields []debField, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}
