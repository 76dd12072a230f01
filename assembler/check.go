package assembler

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Every option value that reaches a host tool's argv (mkfs.ext4, debugfs,
// e2fsck, qemu-img, xz) is a closed enum or matches one of these patterns,
// both in the schemas (checked when the manifest is planned) and again here
// in Go before a tool runs, so an assembler called with options that never
// went through the schema is just as safe. The patterns leave out what a
// tool could read as syntax: a leading '-' (an option), ',' and '=' (more
// qemu-img -o or mkfs -E settings), ':' at the start (a qemu protocol
// prefix), quotes, spaces at the ends, control characters. Paths on argv
// are absolute and follow "--" where the tool takes it.
//
// Each pattern is given once, as a Go string, and pasted into the schemas
// (schemaPattern), so the two checks cannot drift apart.
const (
	uuidPattern = `^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`
	// filenamePattern: a plain name in the output directory; not "." or
	// "..", no '/', nothing a tool or a shell reads as an option.
	filenamePattern = `^[A-Za-z0-9_][A-Za-z0-9._+@-]{0,254}$`
	// labelPattern: an ext4 label holds 16 bytes (mkfs.ext4 would cut a
	// longer one short and warn).
	labelPattern = `^[A-Za-z0-9_][A-Za-z0-9 _.+@-]{0,15}$`
	// partNamePattern: a GPT name holds 36 UTF-16 code units; kiln keeps
	// to printable ASCII.
	partNamePattern = `^[A-Za-z0-9_][A-Za-z0-9 _.+@-]{0,35}$`
	// dosIDPattern: a dos disk identifier, 32 bits in hex.
	dosIDPattern = `^(0x)?[0-9A-Fa-f]{1,8}$`
	// dosTypePattern: a dos partition type, a byte in hex.
	dosTypePattern = `^(0x)?[0-9A-Fa-f]{1,2}$`
	// mountpointPattern: an absolute path of plain components (path.Clean
	// is checked as well).
	mountpointPattern = `^/([A-Za-z0-9_][A-Za-z0-9._+@-]*(/[A-Za-z0-9_][A-Za-z0-9._+@-]*)*)?$`
	// archPattern: an OCI architecture name (amd64, arm64, ppc64le, 386).
	archPattern = `^[a-z0-9_]{1,32}$`
)

var (
	uuidRE       = regexp.MustCompile(uuidPattern)
	filenameRE   = regexp.MustCompile(filenamePattern)
	labelRE      = regexp.MustCompile(labelPattern)
	partNameRE   = regexp.MustCompile(partNamePattern)
	dosIDRE      = regexp.MustCompile(dosIDPattern)
	dosTypeRE    = regexp.MustCompile(dosTypePattern)
	mountpointRE = regexp.MustCompile(mountpointPattern)
	archRE       = regexp.MustCompile(archPattern)
)

// maxImageSize bounds rawfs and qemu images (64 TiB): a sparse file that
// size costs nothing, but mkfs.ext4 writes metadata in proportion to it,
// and a manifest asking for exabytes should get a clear error, not a
// filesystem that runs out of room for its bitmaps.
const maxImageSize int64 = 64 << 40

// Closed sets of qemu-img -o values.
var (
	qcow2Compats   = []string{"0.10", "1.1"}
	vmdkSubformats = []string{"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"}
)

// schemaPattern is a Go pattern as a JSON string for a schema.
func schemaPattern(p string) string {
	return `"` + strings.ReplaceAll(p, `\`, `\\`) + `"`
}

// schemaEnum is a JSON array of the values.
func schemaEnum(vs []string) string {
	return `["` + strings.Join(vs, `", "`) + `"]`
}

// checkPattern refuses a value that does not match re.
func checkPattern(assembler, option, value string, re *regexp.Regexp, what string) error {
	if !re.MatchString(value) {
		return errOption(assembler, option, "%q is not %s (%s)", value, what, re.String())
	}
	return nil
}

// checkEnum refuses a value outside vs.
func checkEnum(assembler, option, value string, vs []string) error {
	if !slices.Contains(vs, value) {
		return errOption(assembler, option, "%q is not one of %s", value, strings.Join(vs, ", "))
	}
	return nil
}

// checkUUID refuses what is not an RFC 4122 UUID in its usual form, before
// a tool gets it: the UUID goes into mkfs.ext4's -E hash_seed=, where a
// comma would add settings, and a bad one makes mkfs pick a random seed.
func checkUUID(assembler, option, s string) error {
	if !uuidRE.MatchString(s) {
		return errOption(assembler, option, "%q is not a UUID (8-4-4-4-12 hex digits)", s)
	}
	return nil
}

// checkImageSize refuses an image size outside 1..maxImageSize.
func checkImageSize(assembler string, size int64) error {
	if size <= 0 || size > maxImageSize {
		return errOption(assembler, "size", "%d bytes is not between 1 and %d (64 TiB)", size, maxImageSize)
	}
	return nil
}

// argPath makes a path safe to put on a tool's argv after its options: an
// absolute path never starts with '-' and has no qemu protocol prefix.
func argPath(p string) (string, error) {
	return filepath.Abs(p)
}
