package kmod

import (
	"encoding/binary"
	"fmt"
)

// The .bin files depmod writes (modules.dep.bin, modules.alias.bin, ...)
// are libkmod's index: a trie with path compression, written post-order
// (children before their parent) after a 12-byte header: magic,
// version 2.1, offset of the root node. A node is its prefix (NUL
// terminated, if any), its child range (first and last character, then
// one big-endian offset per character in the range, 0 for none) and its
// values (count, then priority and NUL-terminated string each), the
// offset's high bits saying which of the three are there. index_insert
// and index_write in kmod's tools/depmod.c are what this follows, node
// splitting and value order included, so that the bytes are the same.

const (
	indexMagic    = 0xB007F457
	indexVersion  = 0x00020001
	indexChildMax = 128

	nodePrefix = 0x80000000
	nodeValues = 0x40000000
	nodeChilds = 0x20000000
)

type indexValue struct {
	priority uint32
	value    string
}

type indexNode struct {
	prefix      string
	values      []indexValue
	first, last int
	children    *[indexChildMax]*indexNode
}

// index is an in-memory libkmod index.
type index struct{ root *indexNode }

func newIndex() *index { return &index{root: &indexNode{first: indexChildMax}} }

func checkASCII(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] >= indexChildMax {
			return fmt.Errorf("%q: byte 0x%x: the module index holds 7-bit ASCII only", s, s[i])
		}
	}
	return nil
}

// addValue inserts v before the first value of equal or higher priority,
// as kmod does: equal priorities end up newest first.
func (n *indexNode) addValue(value string, priority uint32) {
	i := 0
	for i < len(n.values) && n.values[i].priority < priority {
		i++
	}
	n.values = append(n.values, indexValue{})
	copy(n.values[i+1:], n.values[i:])
	n.values[i] = indexValue{priority, value}
}

// insert adds value under key. depmod stops with an error on a byte
// above 127 in either.
func (x *index) insert(key, value string, priority uint32) error {
	if err := checkASCII(key); err != nil {
		return err
	}
	if err := checkASCII(value); err != nil {
		return err
	}
	node := x.root
	i := 0
	for {
		j := 0
		for ; j < len(node.prefix); j++ {
			ch := node.prefix[j]
			if i+j >= len(key) || ch != key[i+j] {
				// Split: the child keeps the node's contents past
				// prefix[j], the node keeps prefix[:j].
				child := *node
				child.prefix = node.prefix[j+1:]
				*node = indexNode{prefix: node.prefix[:j], first: int(ch), last: int(ch),
					children: new([indexChildMax]*indexNode)}
				node.children[ch] = &child
				break
			}
		}
		i += j
		if i == len(key) {
			node.addValue(value, priority)
			return nil
		}
		ch := int(key[i])
		if node.children == nil || node.children[ch] == nil {
			if node.children == nil {
				node.children = new([indexChildMax]*indexNode)
			}
			if ch < node.first {
				node.first = ch
			}
			if ch > node.last {
				node.last = ch
			}
			child := &indexNode{prefix: key[i+1:], first: indexChildMax}
			child.addValue(value, priority)
			node.children[ch] = child
			return nil
		}
		node = node.children[ch]
		i++
	}
}

// bytes is the index file.
func (x *index) bytes() []byte {
	out := make([]byte, 12, 1<<16)
	binary.BigEndian.PutUint32(out[0:], indexMagic)
	binary.BigEndian.PutUint32(out[4:], indexVersion)
	root := writeNode(x.root, &out)
	binary.BigEndian.PutUint32(out[8:], root)
	return out
}

func writeNode(n *indexNode, out *[]byte) uint32 {
	if n == nil {
		return 0
	}
	var offs []uint32
	if n.first < indexChildMax {
		offs = make([]uint32, n.last-n.first+1)
		for i := range offs {
			offs[i] = writeNode(n.children[n.first+i], out)
		}
	}
	b := *out
	off := uint32(len(b))
	if n.prefix != "" {
		b = append(b, n.prefix...)
		b = append(b, 0)
		off |= nodePrefix
	}
	if len(offs) > 0 {
		b = append(b, byte(n.first), byte(n.last))
		for _, o := range offs {
			b = binary.BigEndian.AppendUint32(b, o)
		}
		off |= nodeChilds
	}
	if len(n.values) > 0 {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n.values)))
		for _, v := range n.values {
			b = binary.BigEndian.AppendUint32(b, v.priority)
			b = append(b, v.value...)
			b = append(b, 0)
		}
		off |= nodeValues
	}
	*out = b
	return off
}
