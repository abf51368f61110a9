/*
 * resolve_i.h - confined path resolution: openat2() with a fallback.
 *
 * Private to libnox (local.c; tar.c may use it too).  openat2 with
 * RESOLVE_BENEATH is the primary mechanism; where the kernel (Linux < 5.6)
 * or an emulator (valgrind 3.19) answers ENOSYS, the same confinement is
 * done in user space by a component-by-component O_NOFOLLOW walk.
 */
#ifndef NOX_RESOLVE_I_H
#define NOX_RESOLVE_I_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Opens path relative to the directory dirfd with flags (O_CLOEXEC is
 * always added) and mode (used with O_CREAT), resolved as openat2 does
 * with resolve, a mask of RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS and
 * RESOLVE_NO_MAGICLINKS.  Retries the EAGAIN openat2 gives when it cannot
 * rule out a racing rename.  Returns a new fd (the caller closes it) or a
 * negative errno: -EXDEV when the path (or a symlink on it) leads out of
 * dirfd, -ELOOP for a symlink that RESOLVE_NO_SYMLINKS forbids or too
 * many of them.
 *
 * The fallback differs from openat2 only in being stricter: it always
 * stays beneath dirfd (even without RESOLVE_BENEATH), it follows no
 * absolute symlink (-EXDEV; openat2 with RESOLVE_BENEATH refuses those
 * too), it refuses other resolve flags (-ENOSYS), and it is not atomic
 * with respect to concurrent renames: a directory renamed while we walk
 * may give ENOENT, but never a file outside dirfd, because every step is
 * an openat(O_NOFOLLOW) of one name in a directory already reached, and
 * ".." is taken by walking again from dirfd, never by opening "..".
 */
int resolve_open(int dirfd, const char *path, int flags, mode_t mode,
		 uint64_t resolve);

/* The fallback walk alone (for tests); same contract as resolve_open. */
int resolve_open_walk(int dirfd, const char *path, int flags, mode_t mode,
		      uint64_t resolve);

#endif
