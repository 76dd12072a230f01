/*
 * kiln_hostfs.h: the kiln_hostfs host module, for C stages built with
 * clang --target=wasm32-wasi.
 *
 * WASI preview1 cannot set permission bits, owners, device nodes, xattrs or
 * exact times, and wasi-libc has no chmod or chown at all. kiln's host fills
 * the gap with these imports; docs/hostfs.md is the ABI.
 *
 * Conventions, for every function:
 *   - paths are byte strings (pointer and length, no NUL needed), absolute
 *     ("/etc/x") or relative to "/" (NOT to the working directory); the host
 *     resolves them inside the stage's tree: symlinks and ".." never leave it;
 *   - the result is 0 or a WASI errno, the same numbers as wasi-libc's errno
 *     constants, so `errno = rc` works;
 *   - a mutating call on a read-only mount (/run/kiln/sources,
 *     /run/kiln/build) returns EROFS;
 *   - no function follows a final symlink, except kiln_chmod (chmod(2)
 *     semantics: Linux cannot chmod a symlink).
 */
#ifndef KILN_HOSTFS_H
#define KILN_HOSTFS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_HOSTFS_IMPORT(name) \
	__attribute__((import_module("kiln_hostfs"), import_name(name)))

/* A missing xattr: WASI has no ENODATA, so the host returns ENOMSG (49). */
#define KILN_ENOATTR 49

/* Linux st_mode type bits, for kiln_mknod and kiln_stat.mode. */
#define KILN_S_IFMT  0170000
#define KILN_S_IFREG 0100000
#define KILN_S_IFBLK 0060000
#define KILN_S_IFDIR 0040000
#define KILN_S_IFCHR 0020000
#define KILN_S_IFIFO 0010000
#define KILN_S_IFLNK 0120000

/* kiln_setxattr flags. */
#define KILN_XATTR_CREATE  1
#define KILN_XATTR_REPLACE 2

/* The *_nsec value that keeps a time in kiln_utimens. UTIME_NOW is refused
 * with EINVAL: a stage must not stamp the host's clock into the image. */
#define KILN_UTIME_OMIT 0x3ffffffe

/* Set the permission bits (07777: setuid, setgid and sticky included) of
 * path, following a final symlink. Call kiln_lchown first: a change of owner
 * clears setuid and setgid. */
int32_t kiln_chmod(const char *path, uint32_t path_len, uint32_t mode)
	KILN_HOSTFS_IMPORT("chmod");

/* Set owner and group of path itself. (uint32_t)-1 leaves an id unchanged. */
int32_t kiln_lchown(const char *path, uint32_t path_len, uint32_t uid, uint32_t gid)
	KILN_HOSTFS_IMPORT("lchown");

/* Make a node: mode is KILN_S_IFCHR, KILN_S_IFBLK, KILN_S_IFIFO or
 * KILN_S_IFREG or'ed with exact permission bits (the umask never applies).
 * Device nodes can be made for the image but never opened by a stage. */
int32_t kiln_mknod(const char *path, uint32_t path_len, uint32_t mode,
	uint32_t major, uint32_t minor)
	KILN_HOSTFS_IMPORT("mknod");

/* lsetxattr: flags is 0, KILN_XATTR_CREATE or KILN_XATTR_REPLACE. */
int32_t kiln_setxattr(const char *path, uint32_t path_len,
	const char *name, uint32_t name_len,
	const void *value, uint32_t value_len, uint32_t flags)
	KILN_HOSTFS_IMPORT("setxattr");

/* lgetxattr: writes the value's length to *size. With buf_len 0 only the
 * length is written; a buffer too small gives ERANGE. */
int32_t kiln_getxattr(const char *path, uint32_t path_len,
	const char *name, uint32_t name_len,
	void *buf, uint32_t buf_len, uint32_t *size)
	KILN_HOSTFS_IMPORT("getxattr");

/* llistxattr: NUL-terminated names; size convention as kiln_getxattr. */
int32_t kiln_listxattr(const char *path, uint32_t path_len,
	char *buf, uint32_t buf_len, uint32_t *size)
	KILN_HOSTFS_IMPORT("listxattr");

/* lremovexattr. */
int32_t kiln_removexattr(const char *path, uint32_t path_len,
	const char *name, uint32_t name_len)
	KILN_HOSTFS_IMPORT("removexattr");

/* Set access and modification times of path itself (a symlink is not
 * followed). *_nsec is 0..999999999 or KILN_UTIME_OMIT. */
int32_t kiln_utimens(const char *path, uint32_t path_len,
	int64_t atime_sec, uint32_t atime_nsec,
	int64_t mtime_sec, uint32_t mtime_nsec)
	KILN_HOSTFS_IMPORT("utimens");

/* What kiln_lstat writes: 80 bytes, little-endian. */
struct kiln_stat {
	uint64_t dev;
	uint64_t ino;
	uint32_t mode;  /* full Linux st_mode, type bits included */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;  /* Linux encoding: see kiln_major, kiln_minor */
	int64_t size;
	int64_t atime_sec;
	int64_t atime_nsec;
	int64_t mtime_sec;
	int64_t mtime_nsec;
};
_Static_assert(sizeof(struct kiln_stat) == 80, "struct kiln_stat is 80 bytes");

/* Describe path itself, never following a symlink. */
int32_t kiln_lstat(const char *path, uint32_t path_len, struct kiln_stat *st)
	KILN_HOSTFS_IMPORT("lstat");

/* The WASI errno behind the latest EIO a WASI file call of this stage got
 * (0 if none): WASI in wazero cannot say ENOSPC, EDQUOT, EFBIG, EMLINK ...
 * and says EIO instead. kiln_fail_errno uses it. */
int32_t kiln_eio_cause(uint32_t *errno_out)
	KILN_HOSTFS_IMPORT("eio_cause");

/* Flags of kiln_write_file. */
#define KILN_WRITE_REPLACE 1 /* remove what is in the way, as tar does */
#define KILN_WRITE_APPEND 2  /* append to the existing regular file */

/* Make a regular file with data, then owner (-1 keeps), mode (0..07777)
 * and atime = mtime (KILN_UTIME_OMIT: the epoch), in one call. */
int32_t kiln_write_file(const char *path, uint32_t path_len,
	const void *data, uint32_t data_len, uint32_t mode, uint32_t uid, uint32_t gid,
	int64_t mtime_sec, uint32_t mtime_nsec, uint32_t flags)
	KILN_HOSTFS_IMPORT("write_file");

/* Kinds of kiln_stream_open. */
#define KILN_STREAM_AUTO 0 /* gzip, xz, zstd or bzip2 by magic number, else none */
#define KILN_STREAM_NONE 1
#define KILN_STREAM_GZIP 2
#define KILN_STREAM_XZ 3
#define KILN_STREAM_ZSTD 4
#define KILN_STREAM_BZIP2 5

/* Open length bytes of path from offset (length -1: to the end), to be
 * read decompressed by the host; at most 8 open at once (EMFILE). */
int32_t kiln_stream_open(const char *path, uint32_t path_len,
	int64_t offset, int64_t length, uint32_t kind, uint32_t *handle)
	KILN_HOSTFS_IMPORT("stream_open");

/* Read up to buf_len decompressed bytes; *size 0 at the end. EBADMSG for
 * bad data: kiln_stream_error says what. */
int32_t kiln_stream_read(uint32_t handle, void *buf, uint32_t buf_len, uint32_t *size)
	KILN_HOSTFS_IMPORT("stream_read");

/* The message of the error that ended the stream; size convention as
 * kiln_getxattr. */
int32_t kiln_stream_error(uint32_t handle, char *buf, uint32_t buf_len, uint32_t *size)
	KILN_HOSTFS_IMPORT("stream_error");

int32_t kiln_stream_close(uint32_t handle)
	KILN_HOSTFS_IMPORT("stream_close");

/* Read the stream as a tar archive: the next member's record (layout in
 * docs/hostfs.md; *size 0 at the end; ERANGE with *size for a small buf). */
int32_t kiln_tar_next(uint32_t handle, void *buf, uint32_t buf_len, uint32_t *size)
	KILN_HOSTFS_IMPORT("tar_next");

/* Flags of kiln_tar_write. */
#define KILN_TAR_WRITE_MD5 1 /* write the data's MD5, 16 bytes, at md5 */

/* Write the current member's data as a regular file at path, as
 * kiln_write_file with KILN_WRITE_REPLACE does. */
int32_t kiln_tar_write(uint32_t handle, const char *path, uint32_t path_len,
	uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime_sec, uint32_t mtime_nsec,
	uint32_t flags, uint8_t *md5)
	KILN_HOSTFS_IMPORT("tar_write");

static inline uint32_t kiln_major(uint64_t rdev) {
	return (uint32_t)(((rdev >> 8) & 0xfff) | ((rdev >> 32) & 0xfffff000));
}

static inline uint32_t kiln_minor(uint64_t rdev) {
	return (uint32_t)((rdev & 0xff) | ((rdev >> 12) & 0xffffff00));
}

#undef KILN_HOSTFS_IMPORT

#ifdef __cplusplus
}
#endif

#endif /* KILN_HOSTFS_H */
