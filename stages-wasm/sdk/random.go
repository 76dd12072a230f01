package sdk

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
)

// A stage's randomness is not secret. kiln seeds WASI random_get, and so Go's
// crypto/rand in a guest, from the stage's id, which `kiln inspect` prints
// from the manifest alone: anyone who can read the manifest can compute
// every byte a stage draws (docs/stage-abi.md, "Hermeticity and
// determinism"). That is what makes a stage's machine ids, UUIDs and map
// order reproducible, and what makes its keys, passwords and salts known to
// everyone. The SDK therefore has no helper that generates a secret except
// [SecretKey], which refuses unless the stage runs non-reproducibly.

// ErrPredictableRandom is [SecretKey]'s error when the stage's randomness is
// derived from its id.
var ErrPredictableRandom = errors.New("refusing to make a secret: this stage's random bytes are seeded from its id, " +
	"which `kiln inspect` prints, so anyone who can read the manifest can compute them")

// EnvRandom is the environment variable that says how random_get is
// seeded. Its only value other than unset is [RandomNonReproducible].
const EnvRandom = "KILN_RANDOM"

// RandomNonReproducible is EnvRandom's value for a stage that the manifest
// opted into non-reproducible randomness, explicitly and in a way that enters
// the stage id (so no such result is ever served from the cache or shared
// between builds), and whose random_get is seeded with a secret that no
// `kiln inspect` can print.
//
// kiln does not offer that opt-in yet (see docs/stage-abi.md): today every
// stage is reproducible and SecretKey always fails.
const RandomNonReproducible = "nonreproducible"

// SecretKey returns n random bytes for a key, a password or a salt. It fails
// with [ErrPredictableRandom] unless the stage runs with EnvRandom set to
// RandomNonReproducible. Prefer leaving secrets out of images altogether:
// generate them on first boot.
func SecretKey(n int) ([]byte, error) {
	if os.Getenv(EnvRandom) != RandomNonReproducible {
		return nil, ErrPredictableRandom
	}
	if n <= 0 {
		return nil, fmt.Errorf("SecretKey: %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("SecretKey: %w", err)
	}
	return b, nil
}
