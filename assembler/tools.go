package assembler

import "os"

// scratchDir makes a directory inside the output directory for
// intermediate files. It lives in the output, not in the system's temp
// directory, so that nothing an assembler writes leaves the store and big
// intermediates land on the store's filesystem. The returned func removes
// it; assemblers call it before returning so it is never committed.
func scratchDir(out string) (string, func(), error) {
	dir, err := os.MkdirTemp(out, ".scratch-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
