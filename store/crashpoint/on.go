//go:build kilncrash

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether crash points can fire: true with the kilncrash
// build tag.
const Enabled = true

var (
	target string
	at     int64 = 1
	hits   atomic.Int64
)

func init() {
	v := os.Getenv("KILN_CRASH_AT")
	name, n, ok := strings.Cut(v, ":")
	target = name
	if ok {
		k, err := strconv.ParseInt(n, 10, 64)
		if err != nil || k < 1 {
			fmt.Fprintf(os.Stderr, "kiln: KILN_CRASH_AT=%q: want NAME or NAME:N with N >= 1\n", v)
			os.Exit(2)
		}
		at = k
	}
}

// Hit kills the process with SIGKILL when KILN_CRASH_AT names this point
// and this is the call it counts to.
func Hit(name string) {
	if target == "" || name != target {
		return
	}
	if hits.Add(1) != at {
		return
	}
	fmt.Fprintf(os.Stderr, "kiln: crashpoint %s:%d\n", name, at)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; never go on past the point
}
