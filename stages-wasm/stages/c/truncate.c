/*
 * org.osbuild.truncate in C: sets a file's size as truncate(1) --size does.
 * It replaces the Go build of the stage in the shipped library, and runs the
 * same golden tests (stages-wasm/stages/testdata/org.osbuild.truncate).
 *
 * Options: "filename", a path in the tree (plain or tree://), and "size",
 * [+-<>/%]NUMBER[UNIT] with UNIT one of K M G T P E, optionally followed by
 * "iB" (powers of 1024, as without it) or "B" (powers of 1000).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln.h"

/* Parses size; returns the operator ('=' for none) and stores the bytes. */
static char parse_size(const char *s, long long *out) {
	char op = '=';
	if (*s && strchr("+-<>/%", *s))
		op = *s++;
	if (*s < '0' || *s > '9')
		kiln_fail("option \"size\": no number");
	long long n = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (LLONG_MAX - 9) / 10)
			kiln_fail("option \"size\": too large");
		n = n * 10 + (*s - '0');
	}
	long long mult = 1;
	if (*s) {
		const char *units = "KMGTPE";
		const char *u = strchr(units, *s);
		if (!u)
			kiln_fail("option \"size\": unknown unit \"%s\"", s);
		long long base = 1024;
		if (strcmp(s + 1, "B") == 0)
			base = 1000;
		else if (s[1] != '\0' && strcmp(s + 1, "iB") != 0)
			kiln_fail("option \"size\": unknown unit \"%s\"", s);
		for (int i = 0; i <= u - units; i++) {
			if (mult > (1LL << 62) / base)
				kiln_fail("option \"size\": too large");
			mult *= base;
		}
	}
	if (n > 0 && mult > (1LL << 62) / n)
		kiln_fail("option \"size\": too large");
	if ((op == '/' || op == '%') && n == 0)
		kiln_fail("option \"size\": division by zero");
	*out = n * mult;
	return op;
}

/* Turns a plain or tree:// path into an absolute one; mount:// is refused. */
static const char *tree_path(const char *p) {
	if (strncmp(p, "mount://", 8) == 0)
		kiln_fail("option \"filename\": \"%s\": mount:// paths need a mount, and kiln v1 manifests have none; use a plain path or tree://", p);
	if (strncmp(p, "tree://", 7) == 0)
		p += 7;
	if (*p == '\0')
		kiln_fail("option \"filename\": empty path");
	for (const char *c = p; *c; c++) {
		if (c[0] == '.' && c[1] == '.' && (c == p || c[-1] == '/') && (c[2] == '/' || c[2] == '\0'))
			kiln_fail("option \"filename\": \"%s\": path has a \"..\" component", p);
	}
	return p;
}

int main(void) {
	const char *opts = kiln_options();
	const char *filename = kiln_opt_string(opts, "filename", NULL);
	const char *size = kiln_opt_string(opts, "size", NULL);
	if (!filename)
		kiln_fail("option \"filename\": missing");
	if (!size)
		kiln_fail("option \"size\": missing");
	long long n;
	char op = parse_size(size, &n);
	const char *path = tree_path(filename);
	/* A relative path is relative to "/", the tree. */
	while (*path == '/')
		path++;
	char abs[4096]; /* the kiln_hostfs limit for a path */
	if (snprintf(abs, sizeof abs, "/%s", path) >= (int)sizeof abs)
		kiln_fail("option \"filename\": too long");

	struct stat st;
	int existed = lstat(abs, &st) == 0;
	int fd = open(abs, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		kiln_fail_errno("option \"filename\": %s", abs);
	if (fstat(fd, &st) != 0)
		kiln_fail_errno("%s", abs);
	long long cur = st.st_size, want = n;
	switch (op) {
	case '+': want = cur + n; break;
	case '-': want = cur > n ? cur - n : 0; break;
	case '<': want = cur < n ? cur : n; break;
	case '>': want = cur > n ? cur : n; break;
	case '/': want = cur / n * n; break;
	case '%': want = (cur + n - 1) / n * n; break;
	}
	if (ftruncate(fd, want) != 0)
		kiln_fail_errno("truncating %s", abs);
	if (close(fd) != 0)
		kiln_fail_errno("%s", abs);
	/* WASI creates files 0600: a new file gets what truncate(1) gives it
	 * under umask 022, owned by root. */
	if (!existed) {
		int rc = kiln_lchown(abs, strlen(abs), 0, 0);
		if (rc == 0)
			rc = kiln_chmod(abs, strlen(abs), 0644);
		if (rc != 0) {
			errno = rc;
			kiln_fail_errno("setting owner and mode of %s", abs);
		}
	}
	return 0;
}
