package library

import (
	"crypto/sha256"
	"encoding/hex"
	"path"

	"github.com/kilnbuild/kiln/stages-wasm/internal/wasmmeta"
)

// ErrNoMetadata is returned by ModuleStages for a module without a
// kiln.stages section: a user's stage may carry none, and then runs with
// its options unvalidated.
var ErrNoMetadata = wasmmeta.ErrNoMetadata

// ModuleStages returns the stages the module in file (its bytes in wasm)
// describes in its kiln.stages section.
func ModuleStages(file string, wasm []byte) ([]ModuleStage, error) {
	metas, err := wasmmeta.Read(wasm)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	stages := make([]ModuleStage, 0, len(metas))
	for _, m := range metas {
		stages = append(stages, ModuleStage{
			Name: m.Name, Summary: m.Summary, Schema: m.Schema,
			Module: wasm, ModuleDigest: digest, ModuleName: path.Base(file),
		})
	}
	return stages, nil
}
