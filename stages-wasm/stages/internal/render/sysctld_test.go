package render

import (
	"strings"
	"testing"
)

// TestSysctldOsbuildSpacingAndIgnoreErrors pins issue 11 item 16: osbuild
// writes "key = value", and a "-key" with a value (sysctl.d's "ignore a
// failure to set it") is a setting, not a refused exclusion.
func TestSysctldOsbuildSpacingAndIgnoreErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		params []SysctlParam
		want   string
		err    string
	}{
		{"spacing", []SysctlParam{{Key: "kernel.pid_max", Value: sp("4194304")}}, "kernel.pid_max = 4194304\n", ""},
		{"ignore-errors", []SysctlParam{{Key: "-key.that.will.not.fail", Value: sp("the-greatest-value-ever")}}, "-key.that.will.not.fail = the-greatest-value-ever\n", ""},
		{"exclusion", []SysctlParam{{Key: "-key.pattern.excluded.with.glob"}}, "-key.pattern.excluded.with.glob\n", ""},
		{"empty-value-excludes", []SysctlParam{{Key: "-net.x", Value: sp("")}}, "-net.x\n", ""},
		{"value-with-spaces", []SysctlParam{{Key: "net.ipv4.ip_local_port_range", Value: sp("1024 65000")}}, "net.ipv4.ip_local_port_range = 1024 65000\n", ""},
		{"plain-without-value", []SysctlParam{{Key: "kernel.x"}}, "", "missing or empty"},
		{"plain-empty-value", []SysctlParam{{Key: "kernel.x", Value: sp("")}}, "", "missing or empty"},
		{"newline-in-value", []SysctlParam{{Key: "kernel.x", Value: sp("1\nkernel.y = 2")}}, "", "no newline"},
		{"equals-in-key", []SysctlParam{{Key: "kernel.x=1", Value: sp("2")}}, "", "no newline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Sysctld(c.params)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Sysctld = %q, %v; want an error with %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Sysctld = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
