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

// tableElements returns the total initial size, in elements, of the tables
// a module defines, read from its table section. The engine disables
// wazero's reference-types feature, so table.grow does not validate and a
// table never grows past this: it is the tables' whole cost, which counts
// against the memory limit like linear memory does. (wazero itself only
// refuses a table of more than 2^27 elements, 1 GiB.)
func tableElements(wasm []byte) (uint64, error) {
	r := wasmReader{b: wasm}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return 0, errors.New("not a wasm binary")
	}
	r.b = wasm[8:]
	var total uint64
	for len(r.b) > 0 {
		id, err := r.byte()
		if err != nil {
			return 0, err
		}
		size, err := r.u32()
		if err != nil {
			return 0, err
		}
		if uint64(size) > uint64(len(r.b)) {
			return 0, fmt.Errorf("section %d runs past the end of the module", id)
		}
		body := wasmReader{b: r.b[:size]}
		r.b = r.b[size:]
		if id != 4 { // the table section
			continue
		}
		n, err := body.u32()
		if err != nil {
			return 0, err
		}
		for i := uint32(0); i < n; i++ {
			b, err := body.byte()
			if err != nil {
				return 0, err
			}
			if b == 0x40 { // a table with an initializer: 0x40 0x00 type limits expr
				if _, err := body.byte(); err != nil {
					return 0, err
				}
				if _, err := body.byte(); err != nil {
					return 0, err
				}
			}
			flags, err := body.byte()
			if err != nil {
				return 0, err
			}
			if flags > 3 { // 4..7: 64-bit limits (memory64 tables)
				return 0, fmt.Errorf("table %d: limits flag %#x is not supported", i, flags)
			}
			lo, err := body.u32()
			if err != nil {
				return 0, err
			}
			total += uint64(lo)
			if flags&1 != 0 {
				if _, err := body.u32(); err != nil {
					return 0, err
				}
			}
			// An initializer expression would follow here; wazero
			// accepts none without reference types, so stop.
			if b == 0x40 {
				break
			}
		}
	}
	return total, nil
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
