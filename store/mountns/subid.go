package mountns

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// envNoSubIDs, when set, makes kiln map only the invoking user even where
// subordinate ids are available (for tests of that path, and for users
// who want no files owned by subordinate ids).
const envNoSubIDs = "KILN_NO_SUBIDS"

// idRange is one line of /etc/subuid or /etc/subgid.
type idRange struct{ start, count int }

// subIDs returns the first subordinate id range of the user (by name or
// numeric id) in file, if there is one.
func subIDs(file, name string, id int) (idRange, bool) {
	f, err := os.Open(file)
	if err != nil {
		return idRange{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || (fields[0] != name && fields[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err1 == nil && err2 == nil && count > 0 {
			return idRange{start, count}, true
		}
	}
	return idRange{}, false
}

// subordinateMaps says how to map the invoking user and, with newuidmap
// and newgidmap installed and /etc/subuid and /etc/subgid granting ranges,
// a range of subordinate ids as 1..count in the namespace, the way rootless
// podman does: then a stage can give files to other owners. ok is false
// when only the user itself can be mapped.
func subordinateMaps(uid, gid int) (uidArgs, gidArgs []string, ok bool) {
	if os.Getenv(envNoSubIDs) != "" {
		return nil, nil, false
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return nil, nil, false
	}
	if _, err := exec.LookPath("newgidmap"); err != nil {
		return nil, nil, false
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil, nil, false
	}
	ur, ok1 := subIDs("/etc/subuid", u.Username, uid)
	// newgidmap checks /etc/subgid against the user's name, not the group's.
	gr, ok2 := subIDs("/etc/subgid", u.Username, uid)
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	uidArgs = []string{"0", strconv.Itoa(uid), "1", "1", strconv.Itoa(ur.start), strconv.Itoa(ur.count)}
	gidArgs = []string{"0", strconv.Itoa(gid), "1", "1", strconv.Itoa(gr.start), strconv.Itoa(gr.count)}
	return uidArgs, gidArgs, true
}

// writeMaps runs newuidmap and newgidmap for the child pid.
func writeMaps(pid int, uidArgs, gidArgs []string) error {
	for _, c := range []struct {
		tool string
		args []string
	}{{"newuidmap", uidArgs}, {"newgidmap", gidArgs}} {
		out, err := exec.Command(c.tool, append([]string{strconv.Itoa(pid)}, c.args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w: %s", c.tool, strings.Join(c.args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// waitForMaps blocks the new child until its parent has written the id
// maps, which it signals by closing its end of the pipe on fd 3.
func waitForMaps() error {
	sync := os.NewFile(3, "kiln-userns-sync")
	_, err := io.ReadAll(sync)
	sync.Close()
	if err != nil {
		return fmt.Errorf("mountns: waiting for the id maps: %w", err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("mountns: the parent did not map this process to root in its user namespace (euid %d)", os.Geteuid())
	}
	return nil
}

// OwnIDOnly reports whether the process runs in a user namespace that maps
// a single user id, where nothing can be given to another owner (chown
// fails with EINVAL).
func OwnIDOnly() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		return false
	}
	fields := strings.Fields(lines[0])
	return len(fields) == 3 && fields[2] == "1"
}
