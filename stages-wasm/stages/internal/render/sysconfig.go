package render

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Sysconfig holds the options of org.osbuild.sysconfig.
type Sysconfig struct {
	Kernel *struct {
		UpdateDefault *bool   `json:"update_default"`
		DefaultKernel *string `json:"default_kernel"`
	} `json:"kernel"`
	Network *struct {
		Networking *bool `json:"networking"`
		NoZeroConf *bool `json:"no_zero_conf"`
	} `json:"network"`
	NetworkScripts *struct {
		Ifcfg map[string]Ifcfg `json:"ifcfg"`
	} `json:"network-scripts"`
	Livesys *struct {
		Session string `json:"session"`
	} `json:"livesys"`
	Desktop *struct {
		Preferred      *string `json:"preferred"`
		DisplayManager *string `json:"displaymanager"`
	} `json:"desktop"`
}

// Ifcfg is one network-scripts interface.
type Ifcfg struct {
	Device    *string `json:"device"`
	Bootproto *string `json:"bootproto"`
	Onboot    *bool   `json:"onboot"`
	Type      *string `json:"type"`
	Userctl   *bool   `json:"userctl"`
	Peerdns   *bool   `json:"peerdns"`
	IPv6Init  *bool   `json:"ipv6init"`
}

var ifaceRE = regexp.MustCompile(`^[^/:.\s]{1,2}[^/:\s]{0,13}$`)

// shellUnsafe are the characters a value of a shell-sourced sysconfig file
// may not hold: they would end its line or its double quotes, or expand.
const shellUnsafe = "\n\r\"\\$`"

// Files returns the files under /etc/sysconfig to write, by path. As in
// osbuild, kernel and network values are written bare, ifcfg values in
// double quotes (DEVICE="eth0"); a string value holding a line break,
// quote, backslash, "$" or backtick is refused rather than written into a
// file the boot scripts source.
func (s Sysconfig) Files() (map[string]string, error) {
	files := map[string]string{}
	var b strings.Builder
	var bad error
	quoted := false
	kv := func(k string, v any) {
		q := ""
		if quoted {
			q = `"`
		}
		switch v := v.(type) {
		case *bool:
			if v != nil {
				fmt.Fprintf(&b, "%s=%s%s%s\n", k, q, yesNo(*v), q)
			}
		case *string:
			if v == nil {
				return
			}
			if strings.ContainsAny(*v, shellUnsafe) && bad == nil {
				bad = fmt.Errorf("option for %s: %q holds a line break, quote, backslash, $ or backtick", k, *v)
			}
			fmt.Fprintf(&b, "%s=%s%s%s\n", k, q, *v, q)
		}
	}
	take := func(p string) {
		files[path.Join("/etc/sysconfig", p)] = b.String()
		b.Reset()
	}
	if k := s.Kernel; k != nil {
		kv("UPDATEDEFAULT", k.UpdateDefault)
		kv("DEFAULTKERNEL", k.DefaultKernel)
		take("kernel")
	}
	if n := s.Network; n != nil {
		kv("NETWORKING", n.Networking)
		kv("NOZEROCONF", n.NoZeroConf)
		take("network")
	}
	if ns := s.NetworkScripts; ns != nil {
		names := make([]string, 0, len(ns.Ifcfg))
		for name := range ns.Ifcfg {
			names = append(names, name)
		}
		slices.Sort(names)
		quoted = true
		for _, name := range names {
			if !ifaceRE.MatchString(name) {
				return nil, fmt.Errorf("option \"network-scripts.ifcfg\": %q is not an interface name", name)
			}
			c := ns.Ifcfg[name]
			kv("DEVICE", c.Device)
			kv("BOOTPROTO", c.Bootproto)
			kv("ONBOOT", c.Onboot)
			kv("TYPE", c.Type)
			kv("USERCTL", c.Userctl)
			kv("PEERDNS", c.Peerdns)
			kv("IPV6INIT", c.IPv6Init)
			take("network-scripts/ifcfg-" + name)
		}
		quoted = false
	}
	// osbuild means livesys_session="gnome" and PREFERRED="/usr/bin/gnome"
	// but, its format strings lacking their f, writes the braces literally
	// (docs/stages.md); kiln writes the values.
	if l := s.Livesys; l != nil {
		quoted = true
		kv("livesys_session", &l.Session)
		take("livesys")
	}
	if d := s.Desktop; d != nil {
		quoted = true
		kv("PREFERRED", d.Preferred)
		kv("DISPLAYMANAGER", d.DisplayManager)
		take("desktop")
	}
	if bad != nil {
		return nil, bad
	}
	return files, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
