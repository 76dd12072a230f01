package kmod

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DepmodConfigDirs are where depmod reads its configuration, in kmod 30's
// order: a file name found in an earlier directory hides the same name in
// later ones, and the files are then read in name order across all.
var DepmodConfigDirs = []string{"/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/lib/depmod.d"}

// ConfigFile is one depmod.d file.
type ConfigFile struct {
	Path string // for messages
	Data []byte
}

// DepmodConfig is what depmod.d says about one kernel version.
type DepmodConfig struct {
	// searches are the search entries in kmod's list order, which is
	// the reverse of the files' (kmod prepends): the last one here has
	// the highest priority. "" stands for built-in.
	searches  []string
	overrides []string // "subdir/modname", newest first as kmod keeps them
	excludes  []string
	Warnings  []string
}

// ConfigFiles orders depmod.d files as kmod's cfg_load does: names ending
// in .conf and not starting with '.', the first of each name (by
// directory order) kept, all sorted by name. dirs maps each directory to
// its file names.
func ConfigFiles(dirs []string, names map[string][]string) []string {
	var keep []string // dir/name, in name order
	seen := map[string]bool{}
	for _, d := range dirs {
		for _, n := range names[d] {
			if strings.HasPrefix(n, ".") || len(n) < 6 || !strings.HasSuffix(n, ".conf") || seen[n] {
				continue
			}
			seen[n] = true
			keep = append(keep, d+"/"+n)
		}
	}
	slices.SortStableFunc(keep, func(a, b string) int {
		return strings.Compare(a[strings.LastIndexByte(a, '/')+1:], b[strings.LastIndexByte(b, '/')+1:])
	})
	return keep
}

// readlineWrapped splits a depmod.d file into lines as kmod's
// freadline_wrapped does: a backslash before a newline joins the lines,
// a backslash before anything else is dropped. Each line comes with the
// number of its last physical line.
func readlineWrapped(data []byte) (lines []string, nums []int) {
	var b []byte
	n := 0
	started := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		started = true
		switch c {
		case '\n':
			n++
			lines, nums = append(lines, string(b)), append(nums, n)
			b, started = nil, false
		case '\\':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
				n++
				continue
			}
			if i+1 < len(data) {
				i++
				b = append(b, data[i])
			} else {
				b = append(b, 0xff) // EOF stored as a char
			}
		default:
			b = append(b, c)
		}
	}
	if started && len(b) > 0 {
		n++
		lines, nums = append(lines, string(b)), append(nums, n)
	}
	return lines, nums
}

// ParseDepmodConfig reads depmod.d files (in the order ConfigFiles gives)
// for kernel kver as kmod 30's depmod does. It refuses "external", which
// kiln does not implement; lines depmod ignores with a message are
// ignored with a warning.
func ParseDepmodConfig(files []ConfigFile, kver string) (*DepmodConfig, error) {
	c := &DepmodConfig{}
	for _, f := range files {
		lines, nums := readlineWrapped(f.Data)
		for i, line := range lines {
			if line == "" || line[0] == '#' {
				continue
			}
			w := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
			if len(w) == 0 {
				continue
			}
			where := fmt.Sprintf("%s line %d", f.Path, nums[i])
			bad := func() {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s: ignoring bad line starting with %q (as depmod does)", where, w[0]))
			}
			switch w[0] {
			case "search":
				for _, s := range w[1:] {
					switch s {
					case "built-in":
						s = ""
					case "external":
						return nil, fmt.Errorf("%s: \"search external\": external module directories are not implemented", where)
					}
					c.searches = append([]string{s}, c.searches...)
				}
			case "override":
				if len(w) < 4 {
					bad()
					continue
				}
				ok, err := kernelMatches(w[2], kver)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				if ok {
					c.overrides = append([]string{w[3] + "/" + w[1]}, c.overrides...)
				}
			case "external":
				if len(w) < 3 {
					bad()
					continue
				}
				ok, err := kernelMatches(w[1], kver)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				if ok {
					return nil, fmt.Errorf("%s: \"external %s %s\": external module directories are not implemented", where, w[1], w[2])
				}
			case "exclude":
				c.excludes = append(w[1:], c.excludes...)
			case "include", "make_map_files":
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s is not implemented by depmod either: ignored", where, w[0]))
			default:
				bad()
			}
		}
	}
	if c.searches == nil {
		// kmod's default: updates/ before the rest.
		c.searches = []string{"updates"}
	}
	return c, nil
}

// kernelMatches is cfg_kernel_matches: "*", or a POSIX extended regular
// expression found anywhere in the version. Go's RE2 syntax covers what
// depmod.d files use; a pattern it cannot compile is an error rather
// than depmod's silent mismatch.
func kernelMatches(pattern, kver string) (bool, error) {
	if pattern == "*" {
		return true, nil
	}
	re, err := regexp.CompilePOSIX(pattern)
	if err != nil {
		return false, fmt.Errorf("kernel version pattern %q: %w", pattern, err)
	}
	return re.MatchString(kver), nil
}
