package engine

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// procStatus reads the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

// TestWorkerIsConfined: the worker once ran as kiln did, with every
// capability, kiln's environment, the host's network and no seccomp. It
// now has no_new_privs, only the capabilities hostfs needs, a seccomp
// filter, an empty environment but for its phase, and a network namespace
// of its own. It still runs stages (runNoop).
func TestWorkerIsConfined(t *testing.T) {
	e := newEngine(t, Config{})
	runNoop(t, e)
	pid := e.w.cmd.Process.Pid
	st := procStatus(t, pid)
	if st["NoNewPrivs"] != "1" {
		t.Errorf("worker NoNewPrivs = %q, want 1", st["NoNewPrivs"])
	}
	if st["Seccomp"] != "2" {
		t.Errorf("worker Seccomp = %q, want 2 (filter)", st["Seccomp"])
	}
	own := procStatus(t, os.Getpid())
	for _, set := range []string{"CapEff", "CapPrm", "CapBnd"} {
		got, err1 := strconv.ParseUint(st[set], 16, 64)
		mine, err2 := strconv.ParseUint(own[set], 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %q, %q", set, st[set], own[set])
		}
		if got&^workerCaps != 0 || got != mine&workerCaps {
			t.Errorf("worker %s = %016x, want this process's %016x limited to %016x", set, got, mine, workerCaps)
		}
	}
	if os.Geteuid() == 0 && own["CapEff"] != "" {
		if st["CapEff"] == own["CapEff"] {
			t.Errorf("worker running as root kept all of CapEff %s", st["CapEff"])
		}
	}
	if st["CapInh"] != "0000000000000000" || st["CapAmb"] != "0000000000000000" {
		t.Errorf("worker CapInh %s, CapAmb %s, want none", st["CapInh"], st["CapAmb"])
	}

	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := workerEnv + "=" + workerPhaseServe + "\x00"; string(env) != want {
		t.Errorf("worker environment %q, want only %q", env, want)
	}

	if os.Geteuid() != 0 {
		t.Skip("the network namespace check needs root (or kiln's user namespace)")
	}
	wnet, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	mnet, err2 := os.Readlink("/proc/self/ns/net")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if wnet == mnet {
		t.Errorf("worker shares this process's network namespace %s", mnet)
	}
}
