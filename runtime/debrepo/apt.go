package debrepo

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// AptMirror returns the first plain-HTTP Debian mirror that the machine's apt
// configuration uses for suite, read from /etc/apt/sources.list (one-line
// format) and /etc/apt/sources.list.d/*.list and *.sources (deb822). The host
// is never written into the repository: it comes from the machine.
func AptMirror(suite string) (string, error) {
	var lists []string
	if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
		lists = append(lists, "/etc/apt/sources.list")
	}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	lists = append(lists, more...)
	for _, name := range lists {
		if uri, err := mirrorFromOneLine(name, suite); err == nil && uri != "" {
			return uri, nil
		}
	}
	deb822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, name := range deb822 {
		if uri, err := mirrorFromDeb822(name, suite); err == nil && uri != "" {
			return uri, nil
		}
	}
	return "", errors.New("no http mirror for " + suite + " in the apt configuration")
}

func mirrorFromOneLine(name, suite string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") { // [ options ]
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				continue
			}
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[1] == suite && strings.HasPrefix(fields[0], "http://") {
			return strings.TrimSuffix(fields[0], "/"), nil
		}
	}
	return "", sc.Err()
}

func mirrorFromDeb822(name, suite string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var uri string
	err = ReadParagraphs(f, func(p *Paragraph) error {
		if uri != "" {
			return nil
		}
		types, _ := p.Get("Types")
		suites, _ := p.Get("Suites")
		uris, _ := p.Get("URIs")
		if en, ok := p.Get("Enabled"); ok && en == "no" {
			return nil
		}
		if !slices.Contains(strings.Fields(types), "deb") || !slices.Contains(strings.Fields(suites), suite) {
			return nil
		}
		for _, u := range strings.Fields(uris) {
			if strings.HasPrefix(u, "http://") {
				uri = strings.TrimSuffix(u, "/")
				return nil
			}
		}
		return nil
	})
	return uri, err
}
