/*
 * kiln.h: the C side of kiln's stage ABI (docs/stage-abi.md), for stages built
 * with `clang --target=wasm32-wasi` against wasi-libc.
 *
 * A stage reads its options with kiln_options(), picks members out with the
 * kiln_opt_* accessors and reports failure with kiln_fail(), which prints
 * "<stage>: <message>" to stderr and exits 1. The tree is at "/", so plain
 * libc calls (fopen, mkdir, symlink, ...) act on it. What WASI cannot say
 * (chmod, lchown, mknod, xattrs) comes from the kiln_hostfs host module,
 * declared in kiln_hostfs.h, which this header includes; kiln_errno() turns
 * its results into the libc convention.
 *
 * The JSON support is deliberately small: the options must be one JSON
 * object, and the accessors read its top-level members that are strings,
 * integers or booleans. Anything nested is available as raw JSON text via
 * kiln_opt_raw() for the stage to handle itself.
 */
#ifndef KILN_H
#define KILN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln_hostfs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The running stage's name (KILN_STAGE, else argv[0] is unknown: "stage"). */
const char *kiln_stage_name(void);

/*
 * Reads stdin to the end and returns it as a NUL-terminated JSON object.
 * Empty input yields "{}". Input that is not one well-formed JSON object
 * fails the stage with the byte offset of the problem. The buffer lives until
 * the process exits; later calls return the same buffer.
 */
const char *kiln_options(void);

/*
 * Accessors for a top-level member of an object returned by kiln_options().
 * A member that is absent or null gives the default; a member of another type
 * fails the stage, naming the key. When a key repeats, the last one counts,
 * as in Go's encoding/json.
 */
/*
 * The decoded string (escapes resolved, UTF-8), malloc'd, or def itself. A
 * string holding "\u0000" fails the stage rather than being cut short.
 */
const char *kiln_opt_string(const char *opts, const char *key, const char *def);
/* An integer that fits a long long; fractions and exponents are refused. */
long long kiln_opt_int(const char *opts, const char *key, long long def);
bool kiln_opt_bool(const char *opts, const char *key, bool def);
/*
 * The raw JSON text of a member of any type (pointing into opts, *len bytes,
 * not NUL-terminated), or NULL when absent.
 */
const char *kiln_opt_raw(const char *opts, const char *key, size_t *len);

/* Prints "<stage>: <message>\n" to stderr and exits 1. */
_Noreturn void kiln_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As kiln_fail, appending ": " and strerror(errno). */
_Noreturn void kiln_fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Takes a kiln_hostfs result (0 or a WASI errno) and returns 0, or -1 with
 * errno set, as libc does:
 *     if (kiln_errno(kiln_chmod(p, strlen(p), 0644)))
 *             kiln_fail_errno("chmod %s", p);
 */
static inline int kiln_errno(int32_t rc) {
	if (rc == 0)
		return 0;
	errno = rc;
	return -1;
}

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
