//go:build wasip1

package main

import (
	"fmt"
	"strings"

	"github.com/kilnbuild/kiln/stages-wasm/sdk"
	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/render"
)

type localeOptions struct {
	Language string `json:"language"`
}

// org.osbuild.locale sets LANG in /etc/locale.conf, keeping the file's
// other settings. No locale tool runs, so the output does not depend on the
// host (osbuild's did, through the host's systemd-firstboot).
func init() {
	sdk.Register("org.osbuild.locale", func(o localeOptions) error {
		if o.Language == "" || strings.ContainsAny(o.Language, " \t\n\"'\\$`") {
			return fmt.Errorf("option \"language\": %q is not a locale name", o.Language)
		}
		return editEnvFile("/etc/locale.conf", [][2]string{{"LANG", o.Language}})
	})
}

// editEnvFile sets keys in a KEY=value file, creating it 0644 if absent.
func editEnvFile(p string, kv [][2]string) error {
	text, _, err := readOptional(p)
	if err != nil {
		return err
	}
	return writeConfig(p, []byte(render.SetEnv(text, kv)), 0o644)
}
