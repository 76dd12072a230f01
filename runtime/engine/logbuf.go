package engine

import (
	"bytes"
	"fmt"
)

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

// Bytes returns the log, with a note where output was dropped. Around the
// gap it keeps whole lines only, so that no line is shown cut.
func (l *logBuffer) Bytes() []byte {
	if l.dropped == 0 {
		return append(append([]byte(nil), l.head...), l.tail...)
	}
	head, tail, dropped := l.head, l.tail, l.dropped
	if i := bytes.LastIndexByte(head, '\n'); i >= 0 {
		dropped += int64(len(head) - i - 1)
		head = head[:i+1]
	}
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i+1 < len(tail) {
		dropped += int64(i + 1)
		tail = tail[i+1:]
	}
	out := make([]byte, 0, len(head)+len(tail)+64)
	out = append(out, head...)
	if len(head) > 0 && head[len(head)-1] != '\n' {
		out = append(out, '\n')
	}
	out = fmt.Appendf(out, "[kiln: %d bytes of output dropped here]\n", dropped)
	return append(out, tail...)
}
