// Command guest provides the pipeline tests' stages, one multi-call
// module built with GOOS=wasip1 GOARCH=wasm.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

func main() {
	sdk.Register("test.write", write)
	sdk.Register("test.copy", copyFile)
	sdk.Register("test.fail", fail)
	sdk.Register("test.ls", list)
	sdk.Dispatch()
}

// write writes content to path in the tree.
func write(o struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}) error {
	fmt.Printf("writing %s\n", o.Path)
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.Path, []byte(o.Content), 0o644)
}

// copyFile copies from (an input under /run/kiln) to to (in the tree).
func copyFile(o struct {
	From string `json:"from"`
	To   string `json:"to"`
}) error {
	b, err := os.ReadFile(o.From)
	if err != nil {
		return err
	}
	return os.WriteFile(o.To, b, 0o644)
}

func fail(struct{}) error {
	fmt.Println("about to fail")
	return fmt.Errorf("failing on purpose")
}

// list writes the names in dir, one a line, to to.
func list(o struct {
	Dir  string `json:"dir"`
	To   string `json:"to"`
	Uses string `json:"uses"` // names a source, so that the stage sees it
}) error {
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name()+"\n")
	}
	return os.WriteFile(o.To, []byte(strings.Join(names, "")), 0o644)
}
