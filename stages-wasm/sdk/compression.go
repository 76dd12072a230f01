package sdk

import "syscall"

// Compression names the format [OpenDecompressed] undoes.
type Compression uint32

// The kinds of kiln_hostfs stream_open (docs/hostfs.md).
const (
	// CompressAuto picks gzip, xz, zstd or bzip2 by the magic number at
	// the start of the data, and reads anything else as it is.
	CompressAuto Compression = iota
	CompressNone
	CompressGzip
	CompressXz
	CompressZstd
	CompressBzip2
)

// ErrBadData is the error of a decompressed stream whose data is corrupt or
// truncated; kiln_hostfs reports it as EBADMSG.
var ErrBadData error = errBadData{}

type errBadData struct{}

func (errBadData) Error() string { return "bad compressed data" }

// Is makes the error match EBADMSG too, the errno it comes as.
func (errBadData) Is(target error) bool { return target == syscall.EBADMSG }
