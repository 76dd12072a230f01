package render

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ChronyServer is one org.osbuild.chrony "servers" entry.
type ChronyServer struct {
	Hostname string `json:"hostname"`
	Minpoll  *int   `json:"minpoll"`
	Maxpoll  *int   `json:"maxpoll"`
	Iburst   *bool  `json:"iburst"`
	Prefer   bool   `json:"prefer"`
}

// Refclock is one org.osbuild.chrony "refclocks" entry.
type Refclock struct {
	Driver struct {
		Name      string `json:"name"`
		Device    string `json:"device"`
		Clear     bool   `json:"clear"`
		Segment   *int   `json:"segment"`
		Perm      string `json:"perm"`
		Path      string `json:"path"`
		NoCrossTS bool   `json:"nocrossts"`
		ExtPPS    bool   `json:"extpps"`
		Pin       *int   `json:"pin"`
		Channel   *int   `json:"channel"`
	} `json:"driver"`
	Poll   *int         `json:"poll"`
	Dpoll  *int         `json:"dpoll"`
	Offset *json.Number `json:"offset"`
}

// Chrony holds the options of org.osbuild.chrony; nil means not given.
type Chrony struct {
	Timeservers []string       `json:"timeservers"`
	Servers     []ChronyServer `json:"servers"`
	Leapsectz   *string        `json:"leapsectz"`
	Refclocks   []Refclock     `json:"refclocks"`
}

// EditChrony returns chrony.conf edited: when servers are given, every
// server and pool line is replaced by them (placed where the first one
// was, else at the top); a leapsectz option replaces the leapsectz lines
// (empty removes them); refclocks replace the refclock lines. Other lines
// are kept in order.
func EditChrony(conf string, o Chrony) (string, error) {
	var servers, refclocks []string
	for i, s := range o.Timeservers {
		if err := chronyWord(s); err != nil {
			return "", fmt.Errorf("option \"timeservers[%d]\": %w", i, err)
		}
		servers = append(servers, "server "+s+" iburst")
	}
	for i, s := range o.Servers {
		if err := chronyWord(s.Hostname); err != nil {
			return "", fmt.Errorf("option \"servers[%d].hostname\": %w", i, err)
		}
		// osbuild's order: prefer, iburst, minpoll, maxpoll.
		l := "server " + s.Hostname
		if s.Prefer {
			l += " prefer"
		}
		if s.Iburst == nil || *s.Iburst {
			l += " iburst"
		}
		if s.Minpoll != nil {
			l += " minpoll " + strconv.Itoa(*s.Minpoll)
		}
		if s.Maxpoll != nil {
			l += " maxpoll " + strconv.Itoa(*s.Maxpoll)
		}
		servers = append(servers, l)
	}
	for i, r := range o.Refclocks {
		l, err := refclock(r)
		if err != nil {
			return "", fmt.Errorf("option \"refclocks[%d].driver\": %w", i, err)
		}
		refclocks = append(refclocks, l)
	}
	replace := map[string][]string{}
	if o.Timeservers != nil || o.Servers != nil {
		replace["server"], replace["pool"] = servers, nil
	}
	if o.Leapsectz != nil {
		replace["leapsectz"] = nil
		if *o.Leapsectz != "" {
			if err := chronyWord(*o.Leapsectz); err != nil {
				return "", fmt.Errorf("option \"leapsectz\": %w", err)
			}
			replace["leapsectz"] = []string{"leapsectz " + *o.Leapsectz}
		}
	}
	if o.Refclocks != nil {
		replace["refclock"] = refclocks
	}
	var out []string
	placed := map[string]bool{}
	lines := strings.Split(strings.TrimSuffix(conf, "\n"), "\n")
	if conf == "" {
		lines = nil
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			out = append(out, l)
			continue
		}
		key := f[0]
		if key == "pool" {
			key = "server" // pools and servers are one list to replace
		}
		repl, ok := replace[key]
		if !ok {
			out = append(out, l)
			continue
		}
		if !placed[key] {
			out = append(out, repl...)
			placed[key] = true
		}
	}
	var head []string
	for _, k := range []string{"server", "leapsectz", "refclock"} {
		if repl, ok := replace[k]; ok && !placed[k] {
			head = append(head, repl...)
		}
	}
	return strings.Join(append(head, out...), "\n") + "\n", nil
}

// chronyWord checks a value that goes into chrony.conf as one word: a
// space would make the rest of it options of the directive, a line break
// another directive, and chronyd would refuse the file or read it as
// something else.
func chronyWord(v string) error {
	if v == "" || strings.ContainsAny(v, " \t\n\r\x00") {
		return fmt.Errorf("%q is empty or holds a space or a line break", v)
	}
	return nil
}

// refclock writes a refclock line as chronyd reads it: the driver's
// options follow its parameter, each after a ':' ("PPS /dev/pps0:clear",
// "SHM 0:perm=0660", "PHC /dev/ptp0:nocrossts:extpps"). chronyd cuts the
// parameter at every ':' and takes each piece as one option; after a space
// "clear" or "perm" is a refclock option chronyd does not know, and it
// refuses the file. osbuild joins PHC's options with ',', which chronyd
// reads as one unknown option when the driver starts; kiln does not follow
// it there.
func refclock(r Refclock) (string, error) {
	d := r.Driver
	var param string
	var opts []string
	switch d.Name {
	case "PPS":
		if d.Device == "" {
			return "", fmt.Errorf("PPS needs a device")
		}
		param = d.Device
		if d.Clear {
			opts = append(opts, "clear")
		}
	case "SHM":
		if d.Segment == nil {
			return "", fmt.Errorf("SHM needs a segment")
		}
		param = strconv.Itoa(*d.Segment)
		if d.Perm != "" {
			opts = append(opts, "perm="+d.Perm)
		}
	case "SOCK":
		if d.Path == "" {
			return "", fmt.Errorf("SOCK needs a path")
		}
		param = d.Path
	case "PHC":
		if d.Path == "" {
			return "", fmt.Errorf("PHC needs a path")
		}
		param = d.Path
		if d.NoCrossTS {
			opts = append(opts, "nocrossts")
		}
		if d.ExtPPS {
			opts = append(opts, "extpps")
		}
		if d.Pin != nil {
			opts = append(opts, "pin="+strconv.Itoa(*d.Pin))
		}
		if d.Channel != nil {
			opts = append(opts, "channel="+strconv.Itoa(*d.Channel))
		}
		if d.Clear {
			opts = append(opts, "clear")
		}
	default:
		return "", fmt.Errorf("unknown driver %q (want PPS, SHM, SOCK or PHC)", d.Name)
	}
	// A ':' or a space in the parameter would split it into options or
	// words chronyd reads as something else.
	if strings.ContainsAny(param, ": \t\n\r\x00") {
		return "", fmt.Errorf("%s parameter %q holds a ':', a space or a line break", d.Name, param)
	}
	l := "refclock " + d.Name + " " + strings.Join(append([]string{param}, opts...), ":")
	if r.Poll != nil {
		l += " poll " + strconv.Itoa(*r.Poll)
	}
	if r.Dpoll != nil {
		l += " dpoll " + strconv.Itoa(*r.Dpoll)
	}
	if r.Offset != nil {
		l += " offset " + r.Offset.String()
	}
	return l, nil
}
