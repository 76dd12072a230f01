// Command kiln-wasmmeta appends the kiln.stages custom section to a built
// stage module, so that the .wasm file describes the stages it provides:
//
//	go run ./stages-wasm/internal/cmd/kiln-wasmmeta -schemas DIR -o OUT.wasm IN.wasm STAGE...
//
// Each STAGE is read from DIR/STAGE.json, a {"name","summary","schema"}
// object. With -print it instead prints the section of IN.wasm as JSON.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnbuild/kiln/stages-wasm/internal/wasmmeta"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kiln-wasmmeta:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("kiln-wasmmeta", flag.ContinueOnError)
	schemas := fl.String("schemas", "", "directory of STAGE.json files")
	out := fl.String("o", "", "output module (may equal the input)")
	print := fl.Bool("print", false, "print the kiln.stages section of IN.wasm")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() < 1 {
		return fmt.Errorf("usage: kiln-wasmmeta -schemas DIR -o OUT IN.wasm STAGE... | kiln-wasmmeta -print IN.wasm")
	}
	wasm, err := os.ReadFile(fl.Arg(0))
	if err != nil {
		return err
	}
	if *print {
		stages, err := wasmmeta.Read(wasm)
		if err != nil {
			return fmt.Errorf("%s: %w", fl.Arg(0), err)
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(stages)
	}
	if *schemas == "" || *out == "" || fl.NArg() < 2 {
		return fmt.Errorf("-schemas, -o and at least one STAGE are required")
	}
	var stages []wasmmeta.StageMeta
	for _, name := range fl.Args()[1:] {
		m, err := readSchema(filepath.Join(*schemas, name+".json"))
		if err != nil {
			return err
		}
		if m.Name != name {
			return fmt.Errorf("%s.json: names stage %q", name, m.Name)
		}
		stages = append(stages, m)
	}
	res, err := wasmmeta.Append(wasm, stages)
	if err != nil {
		return fmt.Errorf("%s: %w", fl.Arg(0), err)
	}
	// Written beside the output and renamed, so a failed run never leaves
	// a module without its description under the final name.
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, res, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}

func readSchema(path string) (wasmmeta.StageMeta, error) {
	var m wasmmeta.StageMeta
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
