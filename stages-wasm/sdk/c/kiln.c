/* kiln.c: see kiln.h. Builds with clang --target=wasm32-wasi and wasi-libc. */
#include "kiln.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Nesting deeper than this is refused rather than risking the small wasm stack. */
#define MAX_DEPTH 64

const char *kiln_stage_name(void) {
	const char *name = getenv("KILN_STAGE");
	return name && *name ? name : "stage";
}

static _Noreturn void vfail(const char *fmt, va_list ap, const char *suffix) {
	fprintf(stderr, "%s: ", kiln_stage_name());
	vfprintf(stderr, fmt, ap);
	if (suffix)
		fprintf(stderr, ": %s", suffix);
	fputc('\n', stderr);
	exit(1);
}

void kiln_fail(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vfail(fmt, ap, NULL);
}

void kiln_fail_errno(const char *fmt, ...) {
	int e = errno;
	uint32_t cause = 0;
	/* A full disk arrives as EIO; say what it really was. */
	if (e == EIO && kiln_eio_cause(&cause) == 0 && cause != 0)
		e = (int)cause;
	const char *msg = strerror(e);
	va_list ap;
	va_start(ap, fmt);
	vfail(fmt, ap, msg);
}

/* ---- a JSON scanner: validates and skips values, never builds a tree ---- */

/* Where the last scan went wrong, for the error message. */
static const char *bad;

static const char *fail_at(const char *p) {
	bad = p;
	return NULL;
}

static const char *skip_ws(const char *p) {
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* p is at the opening quote; returns just past the closing one. */
static const char *skip_string(const char *p) {
	for (p++; *p != '"'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20) /* also catches the terminating NUL */
			return fail_at(p);
		if (c != '\\')
			continue;
		p++;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (!isxdigit((unsigned char)p[i]))
					return fail_at(p + i);
			p += 4;
		} else if (*p == '\0' || !strchr("\"\\/bfnrt", *p)) {
			return fail_at(p);
		}
	}
	return p + 1;
}

static const char *skip_digits(const char *p) {
	if (!isdigit((unsigned char)*p))
		return fail_at(p);
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

static const char *skip_number(const char *p) {
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (!(p = skip_digits(p)))
		return NULL;
	if (*p == '.' && !(p = skip_digits(p + 1)))
		return NULL;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		p = skip_digits(p);
	}
	return p;
}

static const char *skip_literal(const char *p, const char *word) {
	size_t n = strlen(word);
	return strncmp(p, word, n) == 0 ? p + n : fail_at(p);
}

static const char *skip_value(const char *p, int depth);

/* p is at '{' or '['; returns just past the matching close. */
static const char *skip_container(const char *p, int depth) {
	char close = *p == '{' ? '}' : ']';
	bool object = close == '}';
	if (depth >= MAX_DEPTH)
		return fail_at(p);
	p = skip_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (object) {
			if (*p != '"')
				return fail_at(p);
			if (!(p = skip_string(p)))
				return NULL;
			p = skip_ws(p);
			if (*p != ':')
				return fail_at(p);
			p++;
		}
		if (!(p = skip_value(p, depth + 1)))
			return NULL;
		p = skip_ws(p);
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return fail_at(p);
		p = skip_ws(p + 1);
	}
}

static const char *skip_value(const char *p, int depth) {
	p = skip_ws(p);
	switch (*p) {
	case '"':
		return skip_string(p);
	case '{':
	case '[':
		return skip_container(p, depth);
	case 't':
		return skip_literal(p, "true");
	case 'f':
		return skip_literal(p, "false");
	case 'n':
		return skip_literal(p, "null");
	default:
		return skip_number(p);
	}
}

const char *kiln_options(void) {
	static char *opts;
	if (opts)
		return opts;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	for (;;) {
		if (buf && len + 1 == cap)
			buf = realloc(buf, cap *= 2);
		if (!buf)
			kiln_fail("reading options: out of memory");
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			kiln_fail_errno("reading options from stdin");
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (strlen(buf) != len)
		kiln_fail("decoding options: NUL byte at offset %zu", strlen(buf));
	const char *p = skip_ws(buf);
	if (*p == '\0') {
		free(buf);
		return opts = strdup("{}");
	}
	if (*p != '{')
		kiln_fail("decoding options: not a JSON object (at byte %td)", p - buf);
	bad = NULL;
	const char *end = skip_value(p, 0);
	if (!end)
		kiln_fail("decoding options: malformed JSON (at byte %td)", (bad ? bad : p) - buf);
	end = skip_ws(end);
	if (*end != '\0')
		kiln_fail("decoding options: data after the object (at byte %td)", end - buf);
	return opts = buf;
}

/* ---- member lookup ---- */

static unsigned hexval(char c) {
	return isdigit((unsigned char)c) ? (unsigned)(c - '0') : (unsigned)(tolower((unsigned char)c) - 'a' + 10);
}

static unsigned read_u4(const char *p) {
	return hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]);
}

static char *put_utf8(char *o, uint32_t r) {
	if (r < 0x80) {
		*o++ = (char)r;
	} else if (r < 0x800) {
		*o++ = (char)(0xc0 | r >> 6);
		*o++ = (char)(0x80 | (r & 0x3f));
	} else if (r < 0x10000) {
		*o++ = (char)(0xe0 | r >> 12);
		*o++ = (char)(0x80 | (r >> 6 & 0x3f));
		*o++ = (char)(0x80 | (r & 0x3f));
	} else {
		*o++ = (char)(0xf0 | r >> 18);
		*o++ = (char)(0x80 | (r >> 12 & 0x3f));
		*o++ = (char)(0x80 | (r >> 6 & 0x3f));
		*o++ = (char)(0x80 | (r & 0x3f));
	}
	return o;
}

/*
 * Decodes the validated string token at p (at its quote) into a malloc'd,
 * NUL-terminated buffer and stores its length in *len, which is less than
 * strlen when the string holds "\u0000". Unpaired surrogates become U+FFFD,
 * as in Go. The result is never longer than the token, so the token's
 * length bounds the allocation.
 */
static char *decode_string(const char *p, size_t *len) {
	const char *end = skip_string(p);
	char *out = malloc((size_t)(end - p)), *o = out;
	if (!out)
		kiln_fail("decoding options: out of memory");
	for (p++; *p != '"'; p++) {
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		switch (*++p) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			uint32_t r = read_u4(p + 1);
			p += 4;
			if (r >= 0xd800 && r < 0xdc00 && p[1] == '\\' && p[2] == 'u') {
				uint32_t lo = read_u4(p + 3);
				if (lo >= 0xdc00 && lo < 0xe000) {
					r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			if (r >= 0xd800 && r < 0xe000)
				r = 0xfffd;
			o = put_utf8(o, r);
			break;
		}
		default: /* '"', '\\' and '/' stand for themselves */
			*o++ = *p;
		}
	}
	*o = '\0';
	*len = (size_t)(o - out);
	return out;
}

/* Returns the value of the last member named key, or NULL. */
static const char *find(const char *opts, const char *key) {
	const char *found = NULL;
	const char *p = skip_ws(skip_ws(opts) + 1);
	while (*p == '"') {
		size_t n;
		char *name = decode_string(p, &n);
		bool match = n == strlen(key) && memcmp(name, key, n) == 0;
		free(name);
		p = skip_ws(skip_ws(skip_string(p)) + 1); /* past the ':' */
		if (match)
			found = p;
		p = skip_ws(skip_value(p, 1));
		if (*p == ',')
			p = skip_ws(p + 1);
	}
	return found && strncmp(found, "null", 4) != 0 ? found : NULL;
}

const char *kiln_opt_raw(const char *opts, const char *key, size_t *len) {
	const char *v = find(opts, key);
	if (v)
		*len = (size_t)(skip_value(v, 1) - v);
	return v;
}

const char *kiln_opt_string(const char *opts, const char *key, const char *def) {
	const char *v = find(opts, key);
	if (!v)
		return def;
	if (*v != '"')
		kiln_fail("option %s: want a string", key);
	size_t n;
	char *str = decode_string(v, &n);
	if (n != strlen(str))
		kiln_fail("option %s: holds a NUL character, which a C string cannot", key);
	return str;
}

long long kiln_opt_int(const char *opts, const char *key, long long def) {
	const char *v = find(opts, key);
	if (!v)
		return def;
	const char *end = skip_number(v);
	if (!end)
		kiln_fail("option %s: want an integer", key);
	for (const char *q = v; q < end; q++)
		if (*q == 'e' || *q == 'E' || *q == '.')
			kiln_fail("option %s: want an integer", key);
	errno = 0;
	long long n = strtoll(v, NULL, 10);
	if (errno == ERANGE)
		kiln_fail("option %s: integer out of range", key);
	return n;
}

bool kiln_opt_bool(const char *opts, const char *key, bool def) {
	const char *v = find(opts, key);
	if (!v)
		return def;
	if (strncmp(v, "true", 4) == 0)
		return true;
	if (strncmp(v, "false", 5) == 0)
		return false;
	kiln_fail("option %s: want true or false", key);
}
