// Package render produces the text of the configuration files the system
// configuration stages write (fstab, chrony.conf, sysctl.d, tmpfiles.d,
// modprobe.d, sysconfig, resolv.conf, vconsole.conf, ...), in the formats
// osbuild's stages produce, as pure functions of the options and of the
// file's previous text. The stages only read and write the files.
package render
