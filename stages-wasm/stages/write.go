//go:build wasip1

package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

// fileSpec is where and how kiln.write and kiln.copy place a file.
type fileSpec struct {
	Path    string          `json:"path"`
	Mode    *string         `json:"mode"`
	User    json.RawMessage `json:"user"`
	Group   json.RawMessage `json:"group"`
	Parents bool            `json:"parents"`
}

type writeOptions struct {
	Files []struct {
		fileSpec
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
	} `json:"files"`
}

// kiln.write writes files whose content is in the options, with a mode
// (default 0644) and an owner (default root) set exactly, replacing what
// was there.
func init() {
	sdk.Register("kiln.write", func(o writeOptions) error {
		var view *accountsView
		for i, f := range o.Files {
			opt := fmt.Sprintf("files[%d]", i)
			var data []byte
			switch f.Encoding {
			case "", "utf-8":
				data = []byte(f.Content)
			case "base64":
				var err error
				if data, err = base64.StdEncoding.DecodeString(f.Content); err != nil {
					return fmt.Errorf("option \"%s.content\": %w", opt, err)
				}
			default:
				return fmt.Errorf("option \"%s.encoding\": %q is not utf-8 or base64", opt, f.Encoding)
			}
			if err := place(opt, f.fileSpec, data, &view); err != nil {
				return err
			}
		}
		return nil
	})
}

// place writes data at spec.Path with spec's mode and owner.
func place(opt string, spec fileSpec, data []byte, view **accountsView) error {
	p, err := optPath(opt+".path", spec.Path)
	if err != nil {
		return err
	}
	mode := "0644"
	if spec.Mode != nil {
		mode = *spec.Mode
	}
	m, err := octalMode(opt+".mode", mode)
	if err != nil {
		return err
	}
	if *view == nil {
		if *view, err = loadAccountsView(); err != nil {
			return err
		}
	}
	v := *view
	uid, err := v.id(opt+".user", spec.User, v.user)
	if err != nil {
		return err
	}
	gid, err := v.id(opt+".group", spec.Group, v.group)
	if err != nil {
		return err
	}
	uid, gid = max(uid, 0), max(gid, 0)
	if spec.Parents {
		if err := mkdirAll(path.Dir(p), 0o755, 0, 0); err != nil {
			return fmt.Errorf("option \"%s.path\": making parents: %w", opt, err)
		}
	}
	if err := putFile(p, data, m, uid, gid); err != nil {
		return fmt.Errorf("option \"%s.path\": %w", opt, err)
	}
	return nil
}
