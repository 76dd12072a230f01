// Command guest is the engine tests' stage module: one multi-call binary
// whose argv[0] picks what it does, built with GOOS=wasip1 GOARCH=wasm.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
)

func main() {
	sdk.Register("noop", func(struct{}) error { return nil })
	sdk.Register("echo", echo)
	sdk.Register("fail", fail)
	sdk.Register("print", print)
	sdk.Register("entropy", entropy)
	sdk.Register("env", env)
	sdk.Register("alloc", alloc)
	sdk.Register("sha", sha)
	sdk.Register("mounts", mounts)
	sdk.Register("spin", spin)
	sdk.Dispatch()
}

// echo interleaves stdout and stderr and writes a file into the tree.
func echo(o struct{ Lines int }) error {
	for i := range o.Lines {
		fmt.Printf("out %d\n", i)
		fmt.Fprintf(os.Stderr, "err %d\n", i)
	}
	return os.WriteFile("/echo.txt", []byte("echoed\n"), 0o644)
}

// fail prints to both streams and exits with the given code.
func fail(o struct{ Code int }) error {
	fmt.Println("about to fail")
	fmt.Fprintln(os.Stderr, "something went wrong")
	os.Exit(o.Code)
	return nil
}

// print writes Text to stdout Times times, then Stderr to stderr, and
// exits with Code.
func print(o struct {
	Text, Stderr string
	Times, Code  int
}) error {
	for range o.Times {
		os.Stdout.WriteString(o.Text)
	}
	os.Stderr.WriteString(o.Stderr)
	os.Exit(o.Code)
	return nil
}

// entropy prints everything a stage could take from its surroundings.
func entropy(struct{}) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	now := time.Now()
	fmt.Printf("unix %d\nnsec %d\n", now.Unix(), now.Nanosecond())
	// The Go runtime seeds map iteration order from random_get too.
	m := map[int]bool{}
	for i := range 16 {
		m[i] = true
	}
	fmt.Print("maporder")
	for k := range m {
		fmt.Printf(" %d", k)
	}
	fmt.Printf("\nrandom %s\n", hex.EncodeToString(b[:]))
	return nil
}

// env prints argv and the environment, one per line.
func env(struct{}) error {
	fmt.Printf("args %q\n", os.Args)
	for _, kv := range os.Environ() {
		fmt.Println(kv)
	}
	return nil
}

// alloc holds on to ever more memory until the runtime gives up.
func alloc(o struct{ ChunkMiB int }) error {
	var keep [][]byte
	for {
		c := make([]byte, o.ChunkMiB<<20)
		for i := range c {
			if i%4096 == 0 {
				c[i] = 1
			}
		}
		keep = append(keep, c)
		fmt.Fprintf(os.Stderr, "holding %d MiB\n", len(keep)*o.ChunkMiB)
	}
}

// sha is a CPU-bound stage: Rounds chained SHA-256 of a 4 KiB block.
func sha(o struct{ Rounds int }) error {
	block := make([]byte, 4096)
	for range o.Rounds {
		sum := sha256.Sum256(block)
		copy(block, sum[:])
	}
	fmt.Printf("%x\n", block[:8])
	return nil
}

// mounts reads the read-only inputs and checks that they refuse writes.
func mounts(struct{}) error {
	for _, dir := range []string{"/run/kiln/sources", "/run/kiln/build"} {
		data, err := os.ReadFile(dir + "/input.txt")
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s\n", dir, strings.TrimSpace(string(data)))
		err = os.WriteFile(dir+"/written.txt", []byte("x"), 0o644)
		if err == nil {
			return errors.New(dir + " accepted a write")
		}
		fmt.Printf("%s write: %v\n", dir, err)
	}
	return os.WriteFile("/tree.txt", []byte("tree is writable\n"), 0o644)
}

// spin says it has started, then never returns nor makes another call.
func spin(struct{}) error {
	fmt.Println("spinning")
	n := 0
	for {
		n++
	}
}
