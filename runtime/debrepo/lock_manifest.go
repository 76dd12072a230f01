package debrepo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/kilnbuild/kiln/runtime/manifest"
)

// DebStage is the stage whose options ManifestFromLock fills.
const DebStage = "kiln.deb"

// ErrTemplate: a manifest template ManifestFromLock cannot fill.
var ErrTemplate = errors.New("invalid manifest template")

// ManifestFromLock fills a kiln manifest template from a lock: the one
// stage named kiln.deb (in the pipeline or any build pipeline), whose
// options must not have "packages" yet, gets
//
//	"packages": [{"name", "version", "architecture", "source": "sha256:<hex>"}...]
//
// in the lock's install order, and the manifest's org.osbuild.curl source
// gets one item per package, {"url": "<mirror>/<filename>"}. The rest of
// the template is kept (object keys come out sorted). file names the
// template in errors; mirror comes from ParseMirror.
func ManifestFromLock(file string, template []byte, l *Lock, mirror *url.URL) ([]byte, error) {
	if _, err := manifest.Parse(file, template); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	bad := func(path, format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s: %w", file, path, fmt.Sprintf(format, args...), ErrTemplate)
	}
	dec := json.NewDecoder(bytes.NewReader(template))
	dec.UseNumber() // numbers come out as they went in
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, bad("$", "%v", err)
	}
	type found struct {
		stage map[string]any
		path  string
	}
	var stages []found
	var walk func(p map[string]any, path string)
	walk = func(p map[string]any, path string) {
		if b, ok := p["build"].(map[string]any); ok {
			if bp, ok := b["pipeline"].(map[string]any); ok {
				walk(bp, path+".build.pipeline")
			}
		}
		list, _ := p["stages"].([]any)
		for i, s := range list {
			if st, ok := s.(map[string]any); ok && st["name"] == DebStage {
				stages = append(stages, found{st, fmt.Sprintf("%s.stages[%d]", path, i)})
			}
		}
	}
	if p, ok := doc["pipeline"].(map[string]any); ok {
		walk(p, "$.pipeline")
	}
	switch len(stages) {
	case 0:
		return nil, bad("$.pipeline", "no %s stage to fill", DebStage)
	case 1:
	default:
		return nil, bad(stages[1].path, "a second %s stage (the first is %s); a lock fills exactly one", DebStage, stages[0].path)
	}
	st := stages[0]
	opts, _ := st.stage["options"].(map[string]any)
	if st.stage["options"] != nil && opts == nil {
		return nil, bad(st.path+".options", "not an object")
	}
	if opts == nil {
		opts = map[string]any{}
	}
	if _, ok := opts["packages"]; ok {
		return nil, bad(st.path+".options.packages", "already set; the template leaves it to the lock")
	}
	pkgs := make([]any, 0, len(l.Packages))
	items := map[string]any{}
	for _, p := range l.Packages {
		sum := "sha256:" + p.SHA256
		pkgs = append(pkgs, map[string]any{
			"name": p.Name, "version": p.Version, "architecture": p.Architecture, "source": sum,
		})
		// Filename is a clean relative path of a closed character set
		// (Validate), so it is appended unescaped.
		items[sum] = map[string]any{"url": mirror.String() + "/" + p.Filename}
	}
	opts["packages"] = pkgs
	st.stage["options"] = opts

	srcs, _ := doc["sources"].(map[string]any)
	if doc["sources"] != nil && srcs == nil {
		return nil, bad("$.sources", "not an object")
	}
	if srcs == nil {
		srcs = map[string]any{}
	}
	curl, _ := srcs["org.osbuild.curl"].(map[string]any)
	if srcs["org.osbuild.curl"] != nil && curl == nil {
		return nil, bad(`$.sources["org.osbuild.curl"]`, "not an object")
	}
	if curl == nil {
		curl = map[string]any{}
	}
	for k := range curl {
		if k != "items" {
			return nil, bad(`$.sources["org.osbuild.curl"]`, "has %q; only items can be merged with the lock's", k)
		}
	}
	have, _ := curl["items"].(map[string]any)
	if curl["items"] != nil && have == nil {
		return nil, bad(`$.sources["org.osbuild.curl"].items`, "not an object")
	}
	if have == nil {
		have = map[string]any{}
	}
	for k, v := range items {
		// The same checksum from the template keeps the template's URL:
		// the content is the same by definition.
		if _, ok := have[k]; !ok {
			have[k] = v
		}
	}
	curl["items"] = have
	srcs["org.osbuild.curl"] = curl
	doc["sources"] = srcs

	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	// What is written must be a manifest kiln accepts.
	if _, err := manifest.Parse(file, out.Bytes()); err != nil {
		return nil, fmt.Errorf("filled manifest: %w", err)
	}
	return out.Bytes(), nil
}
