package bootcfg

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"  ro  quiet ", []string{"ro", "quiet"}, false},
		{`console=ttyS0,115200n8 foo="a b" ro`, []string{"console=ttyS0,115200n8", `foo="a b"`, "ro"}, false},
		{`x="unbalanced`, nil, true},
		{"ro\nquiet", nil, true},
		{"ro\x00", nil, true},
		{"a\tb", nil, true},
		{"'single' $x", []string{"'single'", "$x"}, false},
	} {
		got, err := SplitCmdline(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("SplitCmdline(%q) error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil && !errors.Is(err, ErrCmdline) {
			t.Errorf("SplitCmdline(%q) error %v is not ErrCmdline", tc.in, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestGrubenvMatchesGrubEditenv compares the block with what the real
// grub-editenv writes for the same variables.
func TestGrubenvMatchesGrubEditenv(t *testing.T) {
	editenv, err := exec.LookPath("grub-editenv")
	if err != nil {
		t.Skip("needs grub-editenv (grub-common): ", err)
	}
	for _, vars := range [][]Var{
		nil,
		{{"kernelopts", "root=UUID=9c6ae55b-cf88-45b8-84e8-64990759f39d ro console=ttyS0"}},
		{{"kernelopts", "root=LABEL=root"}, {"saved_entry", "ffffffffffffffffffffffffffffffff-6.1.0-50-amd64"}},
		{{"odd", `back\slash`}, {"nl", "two\nlines"}},
	} {
		f := filepath.Join(t.TempDir(), "grubenv")
		args := []string{f, "set"}
		for _, v := range vars {
			args = append(args, v.Name+"="+v.Value)
		}
		if out, err := exec.Command(editenv, f, "create").CombinedOutput(); err != nil {
			t.Fatalf("grub-editenv create: %v: %s", err, out)
		}
		if len(vars) > 0 {
			if out, err := exec.Command(editenv, args...).CombinedOutput(); err != nil {
				t.Fatalf("grub-editenv set: %v: %s", err, out)
			}
		}
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Grubenv(vars)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Grubenv(%q):\n got %q\nwant %q", vars, got, want)
		}
	}
}

func TestGrubenvFull(t *testing.T) {
	if _, err := Grubenv([]Var{{"x", strings.Repeat("a", 1000)}}); !errors.Is(err, ErrGrubenvFull) {
		t.Errorf("error %v, want ErrGrubenvFull", err)
	}
	if _, err := Grubenv([]Var{{"a=b", "c"}}); err == nil {
		t.Error("a name with '=' was accepted")
	}
}

func TestKernelsNewestFirst(t *testing.T) {
	names := []string{"config-6.1.0-9-amd64", "initrd.img-6.1.0-10-amd64", "vmlinuz-6.1.0-9-amd64",
		"vmlinuz-6.1.0-10-amd64", "vmlinuz-5.10.0-28-amd64", "initrd.img-5.10.0-28-amd64", "vmlinuz-", "vmlinuz-bad;name"}
	got := Kernels("/boot", names)
	want := []Kernel{
		{"6.1.0-10-amd64", "/boot/vmlinuz-6.1.0-10-amd64", "/boot/initrd.img-6.1.0-10-amd64"},
		{"6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-9-amd64", ""},
		{"5.10.0-28-amd64", "/boot/vmlinuz-5.10.0-28-amd64", "/boot/initrd.img-5.10.0-28-amd64"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Kernels = %+v\nwant %+v", got, want)
	}
}

func debianGrub() *Grub {
	return &Grub{
		Root:           FS{UUID: "9c6ae55b-cf88-45b8-84e8-64990759f39d"},
		Dir:            "grub",
		KernelOpts:     "ro console=ttyS0,115200n8",
		Timeout:        1,
		CompatVersion:  2,
		Serial:         "serial --unit=0 --speed=115200",
		TerminalInput:  []string{"serial", "console"},
		TerminalOutput: []string{"serial", "console"},
		Kernels:        Kernels("/boot", []string{"vmlinuz-6.1.0-50-amd64", "initrd.img-6.1.0-50-amd64"}),
		Title:          "Debian GNU/Linux 12 (bookworm)",
	}
}

// TestHostileValuesRefused: every option that reaches grub.cfg or
// /etc/default/grub unquoted is refused outside its grammar.
func TestHostileValuesRefused(t *testing.T) {
	for name, mod := range map[string]func(*Grub){
		"kernel_opts newline": func(g *Grub) { g.KernelOpts = "ro\n}\nmenuentry evil {" },
		"serial command":      func(g *Grub) { g.Serial = "serial; insmod evil" },
		"serial newline":      func(g *Grub) { g.Serial = "serial --unit=0\nchainloader (hd1)+1" },
		"terminal":            func(g *Grub) { g.TerminalOutput = []string{"serial;reboot"} },
		"root uuid":           func(g *Grub) { g.Root = FS{UUID: "x --set=root; reboot"} },
		"root label":          func(g *Grub) { g.Root = FS{Label: "a b"} },
		"boot both":           func(g *Grub) { g.Boot = FS{UUID: "6699-AFB5", Label: "boot"} },
		"grub_dir":            func(g *Grub) { g.Dir = "../etc" },
		"default":             func(g *Grub) { g.Default = "$(reboot)" },
		"distributor":         func(g *Grub) { g.Distributor = `Debian"; reboot; "` },
		"timeout_style":       func(g *Grub) { g.TimeoutStyle = "loud" },
	} {
		g := debianGrub()
		mod(g)
		if err := g.Validate(); !errors.Is(err, ErrValue) && !errors.Is(err, ErrCmdline) {
			t.Errorf("%s: Validate() = %v, want a refusal", name, err)
		}
	}
	if err := debianGrub().Validate(); err != nil {
		t.Errorf("the good config is refused: %v", err)
	}
}

// TestKernelOptsStayOneWordEach runs GRUB's own parser on grub.cfg with
// kernel options full of GRUB syntax: grub-script-check must accept the
// file (an unbalanced quote or brace would break out of the quoting), and
// no line of it may start with anything but what kiln writes.
func TestKernelOptsStayOneWordEach(t *testing.T) {
	check, err := exec.LookPath("grub-script-check")
	if err != nil {
		t.Skip("needs grub-script-check (grub-common): ", err)
	}
	for _, opts := range []string{
		`x='}' menuentry evil { linux /evil }`,
		`a=$(reboot) b=${root} c=\ d=;reboot`,
		`quote='\''' "x=a b" } {`,
	} {
		g := debianGrub()
		g.KernelOpts = opts
		if err := g.Validate(); err != nil {
			t.Fatalf("%q: %v", opts, err)
		}
		cfg, err := g.Config()
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "grub.cfg")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(check, f).CombinedOutput(); err != nil {
			t.Errorf("grub-script-check refuses grub.cfg for %q: %v: %s\n%s", opts, err, out, cfg)
		}
		if n := strings.Count(cfg, "menuentry "); n != 1 {
			t.Errorf("%q: %d menuentry lines, want 1:\n%s", opts, n, cfg)
		}
		words, _ := SplitCmdline(opts)
		for _, w := range words {
			if !strings.Contains(cfg, " "+GrubQuote(w)) {
				t.Errorf("%q: word %q is not quoted in:\n%s", opts, w, cfg)
			}
		}
	}
}

func TestGrubCfgGolden(t *testing.T) {
	for name, g := range map[string]*Grub{
		"debian": debianGrub(),
		"bls-osbuild": {
			Root: FS{UUID: "76a22bf4-f153-4541-b6c7-0332c0dfaeac"}, Dir: "grub2", Timeout: 10,
			KernelOpts: "ro biosdevname=0 net.ifnames=0", CompatVersion: 1, BLS: true, Greenboot: true,
		},
	} {
		if err := g.Validate(); err != nil {
			t.Fatal(err)
		}
		cfg, err := g.Config()
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+".grub.cfg", cfg)
		golden(t, name+".default", g.Defaults())
		golden(t, name+".redirect.cfg", g.Redirect())
	}
}

func TestBLSEntry(t *testing.T) {
	e := Entry{Title: "Debian GNU/Linux 12 (bookworm)", Version: "6.1.0-50-amd64", MachineID: "0123456789abcdef0123456789abcdef",
		Linux: "/vmlinuz-6.1.0-50-amd64", Initrd: "/initrd.img-6.1.0-50-amd64", Options: "root=UUID=9c6ae55b-cf88-45b8-84e8-64990759f39d ro"}
	got, err := e.Render()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "entry.conf", got)
	if e.Name() != "0123456789abcdef0123456789abcdef-6.1.0-50-amd64.conf" {
		t.Errorf("Name() = %q", e.Name())
	}
	e.Options = "ro\ninitrd /evil"
	if _, err := e.Render(); !errors.Is(err, ErrValue) {
		t.Errorf("a newline in options: %v, want ErrValue", err)
	}
	e.Options, e.MachineID = "ro", "../../etc"
	if _, err := e.Render(); !errors.Is(err, ErrValue) {
		t.Errorf("a bad machine id: %v, want ErrValue", err)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if os.Getenv("KILN_UPDATE_GOLDEN") != "" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (KILN_UPDATE_GOLDEN=1 writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n got %q\nwant %q", name, got, want)
	}
}

func FuzzSplitCmdlineQuote(f *testing.F) {
	for _, s := range []string{"ro quiet", `a="b c" d`, `'x'`, "\n", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitCmdline(s)
		if err != nil {
			return
		}
		for _, w := range words {
			if w == "" || strings.ContainsAny(w, "\n\x00") {
				t.Fatalf("word %q from %q", w, s)
			}
			q := GrubQuote(w)
			if unquoteGrub(q) != w {
				t.Fatalf("GrubQuote(%q) = %q does not read back", w, q)
			}
		}
		again, err := SplitCmdline(JoinCmdline(words))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("split(join(%q)) = %q, %v", words, again, err)
		}
	})
}

// unquoteGrub reads a word made of '...' runs and \' as GRUB's lexer does.
func unquoteGrub(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case '\'':
			j := strings.IndexByte(q[i+1:], '\'')
			if j < 0 {
				return "\x00unterminated"
			}
			b.WriteString(q[i+1 : i+1+j])
			i += j + 1
		case '\\':
			i++
			b.WriteByte(q[i])
		default:
			return "\x00unquoted"
		}
	}
	return b.String()
}

// FuzzGrubConfig: whatever kernel_opts Validate lets through, grub.cfg
// keeps the shape of the one with plain options: as many lines, one
// menuentry, and every option inside the linux line's quotes.
func FuzzGrubConfig(f *testing.F) {
	for _, s := range []string{"ro", `x='}' menuentry evil {`, "a\nb", `"a b" $c`} {
		f.Add(s)
	}
	base, err := debianGrub().Config()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, opts string) {
		g := debianGrub()
		g.KernelOpts = opts
		if g.Validate() != nil {
			return
		}
		cfg, err := g.Config()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(cfg, "\n") != strings.Count(base, "\n") {
			t.Fatalf("kernel_opts %q changed the number of lines:\n%s", opts, cfg)
		}
		for _, line := range strings.Split(cfg, "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "linux ") {
				words, _ := SplitCmdline(opts)
				var q []string
				for _, w := range append([]string{"root=UUID=9c6ae55b-cf88-45b8-84e8-64990759f39d"}, words...) {
					q = append(q, GrubQuote(w))
				}
				if want := "linux '/boot/vmlinuz-6.1.0-50-amd64' " + strings.Join(q, " "); l != want {
					t.Fatalf("linux line %q, want %q", l, want)
				}
			}
		}
	})
}

func TestSeparateBoot(t *testing.T) {
	g := debianGrub()
	g.Boot = FS{Label: "boot"}
	g.Kernels = Kernels("", []string{"vmlinuz-6.1.0-50-amd64", "initrd.img-6.1.0-50-amd64"})
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, err := g.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"search --no-floppy --set=root --label boot\n",
		"\tlinux '/vmlinuz-6.1.0-50-amd64' 'root=UUID=9c6ae55b-cf88-45b8-84e8-64990759f39d' 'ro' 'console=ttyS0,115200n8'\n",
		"\tinitrd '/initrd.img-6.1.0-50-amd64'\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if r := g.Redirect(); !strings.Contains(r, "--file /grub/grub.cfg\nset prefix=($prefix)/grub\n") {
		t.Errorf("redirect %q does not look for /grub on the boot filesystem", r)
	}
}
