// Package reclist stores a list of records (opaque byte strings) in a file,
// whole or as its difference from another stored list (its base): runs of
// the base's records and records of its own, in order. A list that differs
// from its base in a few places then costs those places to write, not the
// list. A base may itself be a difference; the chain is bounded (MaxDepth),
// and the writer stores a list whole once it would grow past that.
//
// The store keeps its per-object indexes this way (store/index.go): a
// commit after a stage that changed one file writes a few records instead
// of one per entry of the tree.
package reclist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDepth is the longest chain of differences a reader follows: deeper
// lists are refused, and writers store a list whole before reaching it.
const MaxDepth = 8

// HeaderSize is enough of a list's start for Base, for base names of up to
// 128 bytes after a magic line of up to 120.
const HeaderSize = 256

// ErrCorrupt: data does not parse as a list, or its chain does not fit.
var ErrCorrupt = errors.New("reclist: corrupt")

// Op is one step of a difference: N records of the base from position
// From when Rec is nil, else the record Rec.
type Op struct {
	From, N int
	Rec     []byte
}

const (
	kindWhole = 'W'
	kindDelta = 'D'
	opCopy    = 'c'
	opRec     = 'r'
)

// Encode returns the list recs stored whole, after the caller's magic.
func Encode(magic string, recs [][]byte) []byte {
	size := len(magic) + 5
	for _, r := range recs {
		size += 4 + len(r)
	}
	b := make([]byte, 0, size)
	b = append(b, magic...)
	b = append(b, kindWhole)
	b = binary.BigEndian.AppendUint32(b, uint32(len(recs)))
	for _, r := range recs {
		b = appendBytes(b, r)
	}
	return b
}

// EncodeDelta returns the list that ops make of the list stored under the
// name base (whose chain is baseDepth deep, 0 for a whole one), total
// records long.
func EncodeDelta(magic, base string, baseDepth, total int, ops []Op) []byte {
	b := make([]byte, 0, len(magic)+64+len(base)+16*len(ops))
	b = append(b, magic...)
	b = append(b, kindDelta)
	b = appendBytes(b, []byte(base))
	b = binary.BigEndian.AppendUint32(b, uint32(baseDepth+1))
	b = binary.BigEndian.AppendUint32(b, uint32(total))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ops)))
	for _, op := range ops {
		if op.Rec != nil {
			b = append(b, opRec)
			b = appendBytes(b, op.Rec)
			continue
		}
		b = append(b, opCopy)
		b = binary.BigEndian.AppendUint32(b, uint32(op.From))
		b = binary.BigEndian.AppendUint32(b, uint32(op.N))
	}
	return b
}

// Worth reports whether a difference of own records of its own from a
// base baseDepth deep is worth storing instead of the whole list of total
// records: the chain stays within MaxDepth and the difference is small.
func Worth(baseDepth, own, total int) bool {
	return baseDepth+1 <= MaxDepth && own <= 64+total/4
}

// Decode returns the records of data (made by Encode or EncodeDelta with
// magic), and the depth of its chain. A difference's base is read with
// open(name); the records are slices of the data read, which the caller
// must not change.
func Decode(magic string, data []byte, open func(name string) ([]byte, error)) ([][]byte, int, error) {
	return decode(magic, data, open, MaxDepth)
}

func decode(magic string, data []byte, open func(string) ([]byte, error), limit int) ([][]byte, int, error) {
	if len(data) < len(magic)+1 || string(data[:len(magic)]) != magic {
		return nil, 0, fmt.Errorf("%w: no header", ErrCorrupt)
	}
	r := reader{data[len(magic)+1:]}
	switch data[len(magic)] {
	case kindWhole:
		count, ok := r.u32()
		if !ok || uint64(count) > uint64(len(r.b))/4 {
			return nil, 0, fmt.Errorf("%w: record count larger than the data", ErrCorrupt)
		}
		recs := make([][]byte, count)
		for i := range recs {
			if recs[i], ok = r.bytes(); !ok {
				return nil, 0, fmt.Errorf("%w: truncated record", ErrCorrupt)
			}
		}
		if len(r.b) != 0 {
			return nil, 0, fmt.Errorf("%w: trailing bytes", ErrCorrupt)
		}
		return recs, 0, nil
	case kindDelta:
	default:
		return nil, 0, fmt.Errorf("%w: unknown kind %q", ErrCorrupt, data[len(magic)])
	}
	name, ok1 := r.bytes()
	depth, ok2 := r.u32()
	total, ok3 := r.u32()
	nops, ok4 := r.u32()
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, 0, fmt.Errorf("%w: truncated header", ErrCorrupt)
	}
	if depth < 1 || int(depth) > limit {
		return nil, 0, fmt.Errorf("%w: chain depth %d", ErrCorrupt, depth)
	}
	if uint64(nops) > uint64(len(r.b))/5 {
		return nil, 0, fmt.Errorf("%w: op count larger than the data", ErrCorrupt)
	}
	bdata, err := open(string(name))
	if err != nil {
		return nil, 0, fmt.Errorf("reclist: base %s: %w", name, err)
	}
	// A base no deeper than depth-1 will do: the writer may have known an
	// older, deeper form of it (the chain stays bounded either way).
	base, _, err := decode(magic, bdata, open, int(depth)-1)
	if err != nil {
		return nil, 0, err
	}
	if uint64(total) > uint64(len(base))+uint64(len(r.b)) {
		return nil, 0, fmt.Errorf("%w: record count larger than the data", ErrCorrupt)
	}
	recs := make([][]byte, 0, total)
	for range nops {
		kind, ok := r.byte()
		if !ok {
			return nil, 0, fmt.Errorf("%w: truncated op", ErrCorrupt)
		}
		switch kind {
		case opRec:
			rec, ok := r.bytes()
			if !ok {
				return nil, 0, fmt.Errorf("%w: truncated record", ErrCorrupt)
			}
			recs = append(recs, rec)
		case opCopy:
			from, ok1 := r.u32()
			n, ok2 := r.u32()
			if !ok1 || !ok2 || uint64(from)+uint64(n) > uint64(len(base)) {
				return nil, 0, fmt.Errorf("%w: copy outside the base", ErrCorrupt)
			}
			recs = append(recs, base[from:from+n]...)
		default:
			return nil, 0, fmt.Errorf("%w: unknown op %q", ErrCorrupt, kind)
		}
		if len(recs) > int(total) {
			return nil, 0, fmt.Errorf("%w: more records than the header says", ErrCorrupt)
		}
	}
	if len(r.b) != 0 {
		return nil, 0, fmt.Errorf("%w: trailing bytes", ErrCorrupt)
	}
	if len(recs) != int(total) {
		return nil, 0, fmt.Errorf("%w: %d records, the header says %d", ErrCorrupt, len(recs), total)
	}
	return recs, int(depth), nil
}

// Base returns the name of the list data is a difference from, or "" for
// a list stored whole, whatever its magic (a line): data need only hold
// the start of the list (HeaderSize bytes).
func Base(data []byte) (string, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 || nl+1 >= len(data) {
		return "", fmt.Errorf("%w: no header", ErrCorrupt)
	}
	if data[nl+1] != kindDelta {
		return "", nil
	}
	r := reader{data[nl+2:]}
	name, ok := r.bytes()
	if !ok {
		return "", fmt.Errorf("%w: truncated header", ErrCorrupt)
	}
	return string(name), nil
}

func appendBytes(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

type reader struct{ b []byte }

func (r *reader) byte() (byte, bool) {
	if len(r.b) < 1 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, true
}

func (r *reader) u32() (uint32, bool) {
	if len(r.b) < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, true
}

func (r *reader) bytes() ([]byte, bool) {
	n, ok := r.u32()
	if !ok || uint64(n) > uint64(len(r.b)) {
		return nil, false
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s, true
}
