/*
 * The C hello stage: writes /etc/hello with the "greeting" option and links
 * /etc/hello-link to it. It shows the whole C side of the stage ABI: options,
 * plain libc file calls on the tree, and a kiln_hostfs call for the mode,
 * which WASI cannot set.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln.h"

int main(void) {
	const char *opts = kiln_options();
	const char *greeting = kiln_opt_string(opts, "greeting", "Hello");

	if (mkdir("/etc", 0755) != 0 && errno != EEXIST)
		kiln_fail_errno("mkdir /etc");
	FILE *f = fopen("/etc/hello", "w");
	if (!f)
		kiln_fail_errno("open /etc/hello");
	fprintf(f, "%s from the C hello stage\n", greeting);
	if (fclose(f) != 0)
		kiln_fail_errno("write /etc/hello");
	const char *path = "/etc/hello";
	if (kiln_errno(kiln_chmod(path, (uint32_t)strlen(path), 0644)))
		kiln_fail_errno("chmod %s", path);
	if (unlink("/etc/hello-link") != 0 && errno != ENOENT)
		kiln_fail_errno("remove /etc/hello-link");
	if (symlink("hello", "/etc/hello-link") != 0)
		kiln_fail_errno("symlink /etc/hello-link");
	printf("wrote /etc/hello: %s\n", greeting);
	return 0;
}
