// Package bootcfg produces the boot loader files kiln's boot stages write:
// GRUB's grub.cfg, the EFI redirect config and /etc/default/grub as
// osbuild's org.osbuild.grub2 writes them, the 1024-byte grubenv block
// byte for byte as grub-editenv makes it, Boot Loader Specification
// (Type #1) entries and systemd-boot's loader.conf, and the list of the
// tree's kernels, newest first.
//
// Everything here is a pure function of its inputs. Every value that ends
// up inside a GRUB script is either checked against a closed grammar here
// (Validate* functions, which the stages call whatever the schema already
// refused) or quoted so that GRUB's lexer reads it as one literal word:
// a manifest value must never add a command to grub.cfg.
package bootcfg
