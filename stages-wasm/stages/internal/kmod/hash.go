package kmod

import (
	"cmp"
	"slices"
)

// superFastHash is libkmod's hash_superfast (Paul Hsieh's SuperFastHash)
// as kmod 30 computes it on x86: 16-bit loads in little-endian order and
// char signed. depmod prints modules.symbols, and orders the modules
// modules.order does not list, in the iteration order of its hash
// tables, so the output is byte-identical only with the same function.
func superFastHash(key string) uint32 {
	n := uint32(len(key))
	hash, rem := n, n&3
	u16 := func(i int) uint32 { return uint32(key[i]) | uint32(key[i+1])<<8 }
	i := 0
	for l := n / 4; l > 0; l-- {
		hash += u16(i)
		tmp := (u16(i+2) << 11) ^ hash
		hash = (hash << 16) ^ tmp
		i += 4
		hash += hash >> 11
	}
	switch rem {
	case 3:
		hash += u16(i)
		hash ^= hash << 16
		hash ^= uint32(int32(int8(key[i+2]))) << 18
		hash += hash >> 11
	case 2:
		hash += u16(i)
		hash ^= hash << 11
		hash += hash >> 17
	case 1:
		hash += uint32(int32(int8(key[i])))
		hash ^= hash << 10
		hash += hash >> 1
	}
	hash ^= hash << 3
	hash += hash >> 5
	hash ^= hash << 4
	hash += hash >> 17
	hash ^= hash << 25
	hash += hash >> 6
	return hash
}

// hashOrder sorts items by their keys as iterating a libkmod hash of
// nBuckets (a power of two) visits them: by bucket, then by strcmp within
// a bucket (kmod keeps each bucket sorted).
func hashOrder[T any](items []T, key func(T) string, nBuckets uint32) {
	type keyed struct {
		bucket uint32
		key    string
		item   T
	}
	ks := make([]keyed, len(items))
	for i, it := range items {
		k := key(it)
		ks[i] = keyed{superFastHash(k) & (nBuckets - 1), k, it}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if a.bucket != b.bucket {
			return cmp.Compare(a.bucket, b.bucket)
		}
		// kmod's strcmp: on strings without NUL, bytes compared
		// unsigned, as Go compares strings.
		return cmp.Compare(a.key, b.key)
	})
	for i := range ks {
		items[i] = ks[i].item
	}
}
