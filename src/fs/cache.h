/*
 * cache.h - the http cache layer: serves a sandbox from a local cache
 * tree and keeps it in step with the server through the journal.
 *
 *   CACHE_DIR/<host>/lock            one daemon per cache dir (flock)
 *   CACHE_DIR/<host>/<id>/tree/      the mirror the FUSE core serves
 *   CACHE_DIR/<host>/<id>/state      manifest (manifest.h)
 *   CACHE_DIR/<host>/<id>/journal/   pending operations (journal.h)
 *   CACHE_DIR/<host>/lost/<id>.T/    a sandbox that vanished on the
 *                                    server with unsent changes (the
 *                                    cache moves there when the sandbox
 *                                    is found gone, and is removed at
 *                                    release if nothing was unsent)
 *
 * CACHE_DIR is -o cache_dir=DIR, else $XDG_CACHE_HOME/noxfs, else
 * ~/.cache/noxfs (/var/cache/noxfs for root); <host> is the server's
 * "host_port".
 *
 * Hooks (struct fs_sandbox_hooks): attach replays the journal first;
 * before_dir refreshes the listing (one request for the whole workspace)
 * when it is stale; before_open downloads a placeholder's content;
 * note_write / on_close / note_op journal changes; flush drains the
 * journal.  Default mode: a close drains at once and returns the upload's
 * error; with -o writeback_delay=MS a flusher thread drains after MS,
 * many files per tar.  docs/cache.md states the guarantees.
 *
 * Parts: cache.c (this hooks table, attach/detach, appends, replay),
 * cache_list.c (listings, downloads), cache_drain.c (the drain),
 * cache_space.c (the bound -o cache_max, eviction, statfs); they share
 * the private cache_i.h.
 *
 * Locking: the hooks take the layer's own mutexes only; the core builds
 * an operation's paths under the layer's op_mu (between op_begin and
 * op_end), never the other way round.  The hooks hold none across a
 * backend call, except the drain mutex, which serialises drains of one
 * sandbox and is taken by no FUSE operation other than close/fsync/flush
 * and metadata operations in default mode.  The full order, checked in
 * debug builds, is in cache_i.h.
 */
#ifndef NOXFS_CACHE_H
#define NOXFS_CACHE_H

#include "sandbox.h"

extern const struct fs_sandbox_hooks fs_http_hooks;

/*
 * At mount, before the file system is served: every sandbox with a
 * non-empty journal in the cache dir is attached, which replays its
 * journal (one that the server no longer has moves to lost/).  The
 * sandboxes stay attached, so their flushers retry until the server
 * answers.  No-op unless fs uses fs_http_hooks.  Always 0.
 */
int fs_http_replay(struct fs *fs);
/* Once the daemon has forked (fuse_daemonize), before serving: starts
 * the flusher threads of the sandboxes attached so far, and lets later
 * attaches start theirs.  Threads do not survive the fork, so none is
 * started before.  No-op unless fs uses fs_http_hooks. */
void fs_http_start(struct fs *fs);
/* Drops the references fs_http_replay() took (at exit). */
void fs_http_release(struct fs *fs);
/* At exit, before the bounded wait for uploads: every journal entry of
 * every attached sandbox on disk, so none is lost if the wait expires.
 * No-op unless fs uses fs_http_hooks. */
void fs_http_persist(struct fs *fs);
/* Journal entries on disk in the cache dir (every sandbox); 0 unless fs
 * uses fs_http_hooks.  Takes no lock: callable from a stuck exit. */
size_t fs_http_journaled(struct fs *fs);

#endif
