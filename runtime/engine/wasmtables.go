package engine

import (
	"errors"
	"fmt"
)

// maxTableElements bounds the elements a module's tables may declare. The
// stage library's Go module, the largest, declares a few thousand.
const maxTableElements = 10_000_000

// tableElementSize is what wazero holds per table element (a pointer).
const tableElementSize = 8

// boundTables returns the module with every table bounded, and the total
// maximum size of its tables in elements. A table that declares no maximum
// (Go's linker declares none) is given its minimum as maximum, by rewriting
// the table section: table.grow then fails (returns -1, as memory.grow does
// at the memory limit) instead of growing a table without bound, which
// wazero would let reach 2^32 elements, 32 GiB. The maxima are the tables'
// whole cost, which counts against the memory limit like linear memory.
// Reference types stay enabled because turning them off costs 2 ms per
// instantiation of the Go stage module: wazero then validates each of its
// 62,726 data segments every time.
func boundTables(wasm []byte) ([]byte, uint64, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, 0, errors.New("not a wasm binary")
	}
	r := wasmReader{b: wasm[8:]}
	for len(r.b) > 0 {
		start := len(wasm) - len(r.b)
		id, err := r.byte()
		if err != nil {
			return nil, 0, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, 0, err
		}
		if uint64(size) > uint64(len(r.b)) {
			return nil, 0, fmt.Errorf("section %d runs past the end of the module", id)
		}
		body := wasmReader{b: r.b[:size]}
		r.b = r.b[size:]
		if id != 4 { // the table section
			continue
		}
		payload, total, rewrote, err := boundTableSection(&body)
		if err != nil {
			return nil, 0, err
		}
		if !rewrote {
			return wasm, total, nil
		}
		end := len(wasm) - len(r.b)
		out := make([]byte, 0, len(wasm)+len(payload)-int(size))
		out = append(out, wasm[:start]...)
		out = append(out, 4)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
		return append(out, wasm[end:]...), total, nil
	}
	return wasm, 0, nil
}

// boundTableSection re-encodes a table section with a maximum on every
// table.
func boundTableSection(body *wasmReader) (payload []byte, total uint64, rewrote bool, err error) {
	n, err := body.u32()
	if err != nil {
		return nil, 0, false, err
	}
	payload = appendU32(nil, n)
	for i := uint32(0); i < n; i++ {
		typ, err := body.byte()
		if err != nil {
			return nil, 0, false, err
		}
		if typ == 0x40 {
			return nil, 0, false, fmt.Errorf("table %d: initializer expressions are not supported", i)
		}
		flags, err := body.byte()
		if err != nil {
			return nil, 0, false, err
		}
		if flags > 1 { // shared (threads) or 64-bit limits
			return nil, 0, false, fmt.Errorf("table %d: limits flag %#x is not supported", i, flags)
		}
		lo, err := body.u32()
		if err != nil {
			return nil, 0, false, err
		}
		hi := lo
		if flags == 1 {
			if hi, err = body.u32(); err != nil {
				return nil, 0, false, err
			}
		} else {
			rewrote = true
		}
		total += uint64(hi)
		payload = appendU32(appendU32(append(payload, typ, 1), lo), hi)
	}
	if len(body.b) != 0 {
		return nil, 0, false, errors.New("table section: bytes after its tables")
	}
	return payload, total, rewrote, nil
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

type wasmReader struct{ b []byte }

var errShort = errors.New("unexpected end of the module")

func (r *wasmReader) byte() (byte, error) {
	if len(r.b) == 0 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *wasmReader) u32() (uint32, error) {
	var v uint32
	for shift := uint(0); shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("malformed LEB128 number")
}
