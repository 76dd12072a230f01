package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRefusesAssemblerOptionsAtPlanTime (issue 11 item 9): options
// the assembler refuses though its schema allows them (qemu's zipl bootloader)
// were refused only when the assembler ran, after every stage: exit 1
// with the stages' work done. They are refused when the plan is made,
// exit 2, before any stage runs and before the store is opened, by kiln
// build and kiln inspect alike.
func TestBuildRefusesAssemblerOptionsAtPlanTime(t *testing.T) {
	doc := `{"pipeline": {
	  "stages": [{"name": "kiln.write", "options": {"files": [{"path": "/etc/motd", "content": "hello\n"}]}}],
	  "assembler": {"name": "org.osbuild.qemu", "options": {"format": "qcow2", "filename": "disk.qcow2", "size": 67108864,
	    "ptuuid": "0x14fc63d2", "root_fs_uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d", "bootloader": {"type": "zipl"}}}}}`
	m := writeManifest(t, doc)
	const want = `$.pipeline.assembler.options: assembler org.osbuild.qemu: option "bootloader.type": zipl (s390x) is not supported`
	store := filepath.Join(t.TempDir(), "store")
	r := kiln(t, "build", "--progress", "plain", "--store", store, "--output-directory", t.TempDir(), m)
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("kiln build: exit %d, want 2 and %q in:\n%s", r.code, want, r.stderr)
	}
	if strings.Contains(r.stderr, "kiln: building") || strings.Contains(r.stderr, "kiln.write") {
		t.Errorf("kiln build started the build:\n%s", r.stderr)
	}
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kiln build opened the store (%v)", err)
	}
	r = kiln(t, "inspect", m)
	if r.code != 2 || !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Errorf("kiln inspect: exit %d, want 2 and %q in:\n%s\nstdout: %s", r.code, want, r.stderr, r.stdout)
	}
}
