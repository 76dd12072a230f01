package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The end-to-end tests run the real kiln binary, built once with its stage
// library, as a user would.
var kilnBin string

func TestMain(m *testing.M) {
	code, err := buildKiln()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code(m))
}

func buildKiln() (func(*testing.M) int, error) {
	dir, err := os.MkdirTemp("", "kiln-e2e-")
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	// The library script is incremental: cheap when make stages ran.
	if out, err := exec.Command(filepath.Join(root, "stages-wasm/build-library.sh")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the stage library: %v\n%s", err, out)
	}
	kilnBin = filepath.Join(dir, "kiln")
	if out, err := exec.Command("go", "build", "-o", kilnBin, ".").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building kiln: %v\n%s", err, out)
	}
	return func(m *testing.M) int {
		defer os.RemoveAll(dir)
		return m.Run()
	}, nil
}

type result struct {
	code           int
	stdout, stderr string
}

func kiln(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(kilnBin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errOut.String()}
}

// buildJSON runs kiln build --json and decodes the result.
type buildResult struct {
	Success bool
	Error   string
	TreeID  string `json:"tree_id"`
	Stages  []struct {
		Name   string
		ID     string
		Cached bool
		Log    string
		Error  string
	}
	Outputs []string
}

func build(t *testing.T, store, out, manifest string, extra ...string) (buildResult, result) {
	t.Helper()
	args := append([]string{"build", "--json", "--progress", "plain", "--store", store, "--output-directory", out}, extra...)
	r := kiln(t, append(args, manifest)...)
	var br buildResult
	if err := json.Unmarshal([]byte(r.stdout), &br); err != nil {
		t.Fatalf("kiln build --json printed no JSON (exit %d): %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	return br, r
}

func ranStages(br buildResult) []string {
	var names []string
	for _, s := range br.Stages {
		if !s.Cached {
			names = append(names, s.Name)
		}
	}
	return names
}

func writeManifest(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func manifestWithHostname(host string) string {
	return `{"pipeline": {
	  "stages": [
	    {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc"}]}},
	    {"name": "org.osbuild.hostname", "options": {"hostname": "` + host + `"}},
	    {"name": "kiln.write", "options": {"files": [{"path": "/etc/motd", "content": "hello\n"}]}}
	  ],
	  "assembler": {"name": "org.osbuild.tar", "options": {"filename": "root.tar"}}
	}}`
}

func TestBuildCaching(t *testing.T) {
	store, out := t.TempDir(), t.TempDir()
	m := writeManifest(t, manifestWithHostname("one"))
	br, r := build(t, store, out, m, "--checkpoint", "*")
	if r.code != 0 || !br.Success {
		t.Fatalf("first build: exit %d\n%s", r.code, r.stderr)
	}
	if got := ranStages(br); len(got) != 3 {
		t.Errorf("first build ran %v, want all three stages", got)
	}
	first, err := os.ReadFile(filepath.Join(out, "root.tar"))
	if err != nil {
		t.Fatal(err)
	}

	br, r = build(t, store, out, m)
	if r.code != 0 || len(ranStages(br)) != 0 {
		t.Fatalf("second build: exit %d, ran %v", r.code, ranStages(br))
	}
	second, _ := os.ReadFile(filepath.Join(out, "root.tar"))
	if !bytes.Equal(first, second) {
		t.Error("the second build's output differs from the first's")
	}

	// Changing stage 1 of 3 re-runs stages 1 and 2 only.
	m2 := writeManifest(t, manifestWithHostname("two"))
	br, r = build(t, store, out, m2)
	if r.code != 0 {
		t.Fatalf("changed build: exit %d\n%s", r.code, r.stderr)
	}
	if got := strings.Join(ranStages(br), " "); got != "org.osbuild.hostname kiln.write" {
		t.Errorf("after changing stage 1, ran %q", got)
	}

	// Checkpointed stages are listed by kiln store ls.
	ls := kiln(t, "store", "ls", "--store", store)
	if ls.code != 0 || !strings.Contains(ls.stdout, br.Stages[0].ID) {
		t.Errorf("kiln store ls does not list the checkpointed stage %s:\n%s", br.Stages[0].ID, ls.stdout)
	}
	if fsck := kiln(t, "store", "fsck", "--store", store); fsck.code != 0 {
		t.Errorf("fsck after the builds: %s", fsck.stdout)
	}
}

func TestBuildFailingStage(t *testing.T) {
	m := writeManifest(t, `{"pipeline": {"stages": [
	  {"name": "org.osbuild.mkdir", "options": {"paths": [{"path": "/etc"}]}},
	  {"name": "org.osbuild.error", "options": {"returncode": 3}}]}}`)
	store := t.TempDir()
	br, r := build(t, store, t.TempDir(), m)
	if r.code != 1 || br.Success {
		t.Fatalf("exit %d, success %v; want 1", r.code, br.Success)
	}
	last := br.Stages[len(br.Stages)-1]
	if last.Name != "org.osbuild.error" || last.Error == "" || last.Log == "" {
		t.Errorf("failed stage in the result: %+v", last)
	}
	assertStoreClean(t, store)
	// The human output shows the log too.
	h := kiln(t, "build", "--store", store, "--output-directory", t.TempDir(), m)
	if h.code != 1 || !strings.Contains(h.stderr, "log of org.osbuild.error") || !strings.Contains(h.stderr, "stages[1]") {
		t.Errorf("human output of a failing build (exit %d):\n%s", h.code, h.stderr)
	}
	assertStoreClean(t, store)
}

func TestBuildInvalidManifest(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"structure", `{"pipeline": {"stages": [{"name": "org.osbuild.noop"}, {"options": {}}]}}`, "$.pipeline.stages[1]"},
		{"bad option", `{"pipeline": {"stages": [{"name": "org.osbuild.hostname", "options": {"hostname": 42}}]}}`,
			"$.pipeline.stages[0].options.hostname"},
		{"unknown stage", `{"pipeline": {"stages": [{"name": "org.example.nope"}]}}`, "$.pipeline.stages[0].name"},
		{"syntax", `{"pipeline": `, "malformed JSON"},
		{"osbuild v2", `{"version": "2", "pipelines": [{"name": "os", "stages": []}]}`, "kiln reads osbuild v1 manifests only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kiln(t, "build", "--store", t.TempDir(), writeManifest(t, tc.doc))
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 and %q in:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
}

func TestBuildSourceChecksum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "not what the manifest promised")
	}))
	defer srv.Close()
	h := sha256.Sum256([]byte("the promised content"))
	sum := "sha256:" + hex.EncodeToString(h[:])
	m := writeManifest(t, `{
	  "pipeline": {"stages": [{"name": "kiln.copy", "options": {"files": [{"source": "`+sum+`", "path": "/f"}]}}]},
	  "sources": {"org.osbuild.files": {"urls": {"`+sum+`": "`+srv.URL+`/file"}}}}`)
	store := t.TempDir()
	r := kiln(t, "build", "--store", store, "--output-directory", t.TempDir(), m)
	if r.code == 0 || !strings.Contains(r.stderr, "checksum mismatch") || !strings.Contains(r.stderr, srv.URL+"/file") || !strings.Contains(r.stderr, sum) {
		t.Errorf("exit %d; want a checksum error naming the checksum and URL:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(store, "sources", "org.osbuild.files", sum)); err == nil {
		t.Error("the wrong download was stored")
	}
	assertStoreClean(t, store)
}

// TestBuildRelativeFileSource (issue 11 item 8): file:dl/data.txt is read
// from beside the manifest, not from kiln's working directory, and within
// --allow-file-sources; file://dl/data.txt is refused saying what it means.
func TestBuildRelativeFileSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dl"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dl", "data.txt"), []byte("beside the manifest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("beside the manifest\n"))
	sum := "sha256:" + hex.EncodeToString(h[:])
	doc := func(url string) []byte {
		return []byte(`{
	  "pipeline": {"stages": [{"name": "kiln.copy", "options": {"files": [{"source": "` + sum + `", "path": "/f"}]}}]},
	  "sources": {"org.osbuild.files": {"urls": {"` + sum + `": "` + url + `"}}}}`)
	}
	m := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(m, doc("file:dl/data.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	r := kiln(t, "build", "--store", store, "--allow-file-sources", dir, "--output-directory", t.TempDir(), m)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(store, "sources", "org.osbuild.files", sum)); err != nil || string(got) != "beside the manifest\n" {
		t.Errorf("stored source %q, %v", got, err)
	}
	if err := os.WriteFile(m, doc("file://dl/data.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = kiln(t, "build", "--store", t.TempDir(), m)
	if want := `did you mean file:dl/data.txt (relative to the manifest) or file:///dl/data.txt?`; r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, want 2 and %q in:\n%s", r.code, want, r.stderr)
	}
}

func TestInspect(t *testing.T) {
	m := writeManifest(t, manifestWithHostname("x"))
	r := kiln(t, "inspect", m)
	if r.code != 0 {
		t.Fatalf("inspect: exit %d\n%s", r.code, r.stderr)
	}
	var doc struct {
		Pipeline struct {
			Stages    []struct{ ID string }
			Assembler struct{ ID string }
			TreeID    string `json:"tree_id"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Pipeline.Stages) != 3 || doc.Pipeline.Stages[2].ID != doc.Pipeline.TreeID || doc.Pipeline.Assembler.ID == "" {
		t.Errorf("inspect output lacks ids:\n%s", r.stdout)
	}
	// The ids are those kiln build uses.
	br, _ := build(t, t.TempDir(), t.TempDir(), m)
	if br.TreeID != doc.Pipeline.TreeID {
		t.Errorf("inspect says tree %s, build made %s", doc.Pipeline.TreeID, br.TreeID)
	}
}

func TestBuildBadUsage(t *testing.T) {
	m := writeManifest(t, manifestWithHostname("x"))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"checkpoint", []string{"--checkpoint", "org.example.none"}, `--checkpoint "org.example.none" matches no stage`},
		{"export", []string{"--export", "deadbeef00"}, `--export "deadbeef00" matches no stage`},
		{"stage path", []string{"--stage-path", "/nonexistent/kiln"}, "--stage-path /nonexistent/kiln"},
		{"epoch", []string{"--source-date-epoch", "yesterday"}, "--source-date-epoch"},
		{"progress", []string{"--progress", "fancy"}, "--progress"},
		{"missing manifest", []string{"/nonexistent/manifest.json"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"build", "--store", t.TempDir()}, tc.args...)
			if !strings.HasSuffix(args[len(args)-1], ".json") {
				args = append(args, m)
			}
			r := kiln(t, args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 and %q in:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
}
