package schema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stageSchema compiles a built-in stage's schema from the stage library's
// sources.
func stageSchema(t *testing.T, name string) *Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "stages-wasm", "stages", "schemas", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	s, err := Compile("kiln:stage/"+name, doc.Schema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStageSchemasRefuseUndecodable (issue 10 item 19): uids and gids
// outside 0..2^32-2 were accepted and written into /etc/passwd (2^32-1 is
// chown's "leave unchanged"), and fields the stages decode as integers
// were "number", so 1.5 passed the schema and failed the stage.
func TestStageSchemasRefuseUndecodable(t *testing.T) {
	for _, tc := range []struct {
		stage, doc, want string // want: "" valid, else the violation's path
	}{
		{"org.osbuild.users", `{"users": {"a": {"uid": 0, "gid": 4294967294}}}`, ""},
		{"org.osbuild.users", `{"users": {"a": {"uid": 4294967295}}}`, "$.users.a.uid"},
		{"org.osbuild.users", `{"users": {"a": {"uid": -1}}}`, "$.users.a.uid"},
		{"org.osbuild.users", `{"users": {"a": {"gid": 99999999999999999999}}}`, "$.users.a.gid"},
		{"org.osbuild.users", `{"users": {"a": {"uid": 1.5}}}`, "$.users.a.uid"},
		{"org.osbuild.users", `{"users": {"a": {"uid": 1e3}}}`, "$.users.a.uid"},
		{"org.osbuild.users", `{"users": {"a": {"uid": 1e400}}}`, "$.users.a.uid"},
		{"org.osbuild.users", `{"users": {"a": {"expiredate": 1.0}}}`, "$.users.a.expiredate"},
		{"org.osbuild.groups", `{"groups": {"g": {"gid": 4294967294}}}`, ""},
		{"org.osbuild.groups", `{"groups": {"g": {"gid": 4294967295}}}`, "$.groups.g.gid"},
		{"org.osbuild.groups", `{"groups": {"g": {"gid": 10.5}}}`, "$.groups.g.gid"},
		{"org.osbuild.chown", `{"items": {"/x": {"user": 4294967294, "group": "wheel"}}}`, ""},
		{"org.osbuild.chown", `{"items": {"/x": {"user": 4294967295}}}`, `$.items["/x"].user`},
		{"org.osbuild.chown", `{"items": {"/x": {"group": 2.5}}}`, `$.items["/x"].group`},
		{"kiln.copy", `{"files": [{"path": "/x", "source": "sha256:` + strings.Repeat("0", 64) + `", "user": 4294967295}]}`, "$.files[0].user"},
		{"kiln.write", `{"files": [{"path": "/x", "group": 4294967295}]}`, "$.files[0].group"},
		{"org.osbuild.error", `{"returncode": 3}`, ""},
		{"org.osbuild.error", `{"returncode": 1.5}`, "$.returncode"},
		{"org.osbuild.error", `{"returncode": 256}`, "$.returncode"},
		{"org.osbuild.mkdir", `{"paths": [{"path": "/x", "mode": 493}]}`, ""},
		{"org.osbuild.mkdir", `{"paths": [{"path": "/x", "mode": 493.5}]}`, "$.paths[0].mode"},
		{"org.osbuild.mkdir", `{"paths": [{"path": "/x", "mode": 4096}]}`, "$.paths[0].mode"},
		{"org.osbuild.chrony", `{"refclocks": [{"driver": {"name": "SHM", "segment": 1e2}}]}`, "$.refclocks[0].driver"},
	} {
		s := stageSchema(t, tc.stage)
		vs, err := s.Validate([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == "" {
			if len(vs) > 0 {
				t.Errorf("%s %s: %v", tc.stage, tc.doc, vs)
			}
			continue
		}
		found := false
		for _, v := range vs {
			found = found || strings.HasPrefix(v.PathString("$"), tc.want)
		}
		if !found {
			t.Errorf("%s %s: violations %v, want one at %s", tc.stage, tc.doc, vs, tc.want)
		}
	}
}
