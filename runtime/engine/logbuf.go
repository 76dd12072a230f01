package engine

import "fmt"

// logBuffer keeps a bounded copy of a stage's output: the first half of the
// budget and the last half, with a note saying how much was dropped between
// them. The start shows what the stage set out to do and the end shows how
// it failed; a stage that prints a line per file of a 40,000-file tree must
// not hold the whole of it in memory.
type logBuffer struct {
	limit   int
	head    []byte
	tail    []byte // the last limit/2 bytes written after head filled
	dropped int64
}

func newLogBuffer(limit int) *logBuffer {
	return &logBuffer{limit: limit}
}

func (l *logBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := l.limit/2 - len(l.head); room > 0 {
		k := min(room, len(p))
		l.head = append(l.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	keep := l.limit - l.limit/2
	l.tail = append(l.tail, p...)
	if over := len(l.tail) - keep; over > 0 {
		l.dropped += int64(over)
		// Reslicing forward is amortised O(1): append moves the
		// window to a fresh array once the old one's capacity is used.
		l.tail = l.tail[over:]
	}
	return n, nil
}

// Bytes returns the log, with a note where output was dropped.
func (l *logBuffer) Bytes() []byte {
	out := make([]byte, 0, len(l.head)+len(l.tail)+64)
	out = append(out, l.head...)
	if l.dropped > 0 {
		out = fmt.Appendf(out, "\n[kiln: %d bytes of output dropped here; the log keeps the first and last %d KiB]\n",
			l.dropped, l.limit/2>>10)
	}
	return append(out, l.tail...)
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	limit int
	buf   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.buf }
