/*
 * fs.h - the noxfs daemon's shared state: options and the one struct fs.
 *
 * One struct fs exists per daemon (main.c owns it).  Module headers
 * (inode.h, sandbox.h, ctl.h, cred.h) declare their own parts; this header
 * ties them together and holds what several modules read: the options,
 * the backend handle, the FUSE session (for cache invalidation) and the
 * registry of attached sandboxes.
 *
 * Lock order: fs->table.mutex, then a sandbox's mutex, then a control
 * open's mutex, then a result's (a leaf).  No lock is held across a
 * backend call or a kernel notification (see barrier.c).
 */
#ifndef NOXFS_FS_H
#define NOXFS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include <nox/nox.h>

#include "inode.h"

struct fs_sandbox;
struct fs_sandbox_hooks;

/* Filled by main.c from the command line (fuse_opt); read-only after. */
struct fs_opts {
	char *local_dir;      /* --local=DIR; NULL: NOX_DEFAULT_BASE_DIR */
	int local;	      /* --local given */
	char *url;	      /* --url */
	char *session;	      /* -o session=ID */
	int exec_timeout;     /* -o exec_timeout=S */
	long ttl;	      /* -o ttl=S */
	char *cache_dir;      /* -o cache_dir=DIR (http) */
	char *cache_max_s;    /* -o cache_max=SIZE (http), as given */
	unsigned long long cache_max; /* parsed; 0: 10 % of the cache disk */
	double attr_timeout;  /* -o attr_timeout=S */
	double entry_timeout; /* -o entry_timeout=S */
	int unisolated;	      /* -o unisolated (local) */
	char *exec_umask_s;   /* -o exec_umask=OCTAL (local), as given */
	char *exec_output_s;  /* -o exec_output_max=SIZE (local), as given */
	mode_t exec_umask;    /* parsed; NOX_DEFAULT_EXEC_UMASK if not given */
	size_t exec_output_max; /* parsed; 0: NOX_DEFAULT_OUTPUT_CAP */
	int writeback_delay;  /* -o writeback_delay=MS (http, later) */
	char *token;		/* -o token=T (http; default $NOXRUNNER_TOKEN) */
	int v1_only;		/* -o v1_only (http: no extensions) */
	int start_timeout;	/* -o start_timeout=S (http checks at start) */
	int op_timeout;		/* -o op_timeout=S (http requests) */
	int unmount_timeout;	/* -o unmount_timeout=S (exit path bound) */
	int fd_cache;		/* -o fd_cache=N (node descriptors kept) */
	int node_max;		/* -o node_max: the node budget (trim.c) */
	char *pending;		/* first positional, until we know its role */
	char *source;		/* SOURCE positional, applied after parsing */
	int show_help;
	int show_version;
	int has_fsname;
	int has_subtype;
};

struct fs {
	struct fs_opts opts;	/* immutable after start-up */
	struct nox_backend *be; /* immutable; thread-safe itself */
	/* how sandboxes are stored: fs_local_hooks for a backend with a
	 * real workspace directory; the http cache layer sets its own */
	const struct fs_sandbox_hooks *hooks; /* immutable */
	const char *backend_name;	      /* "local" or "http" */
	struct fuse_session *se;	      /* immutable once the loop runs */
	/* the exec barrier's kernel notifications (barrier.c) go here
	 * instead of to se when set: the daemon leaves it NULL; a unit test
	 * without a mount records what would be dropped (v is freed by the
	 * caller).  Immutable. */
	void (*notify)(struct fs *fs, const struct fs_inval *v, size_t n);
	struct fs_table table;

	/* attached sandboxes (singly linked); protected by table.mutex */
	struct fs_sandbox *sandboxes;
	unsigned long sb_serial; /* protected by table.mutex */
	/* -o session=ID: the one sandbox, also in the list; immutable */
	struct fs_sandbox *session;

	uid_t uid; /* the mounting user; immutable */
	gid_t gid;
	struct timespec start; /* mount time (virtual nodes) */
	bool as_root;	       /* euid 0: switch fsuid for creates */
	bool expire_only;      /* kernel can expire dentries (init) */
	bool no_notify;	       /* -s: never notify (see main.c) */

	/* health.c: the last request got no answer */
	atomic_bool silent;

	/* keepalive thread (keepalive.c) */
	pthread_t ka_thread;
	bool ka_running;
	pthread_mutex_t ka_mutex;
	pthread_cond_t ka_cond;
	bool ka_stop; /* protected by ka_mutex */

	/* the node budget's thread (trim.c) */
	pthread_t trim_thread;
	bool trim_running;
};

/* keepalive.c: touches every attached sandbox every min(ttl/3, 300) s. */
int fs_keepalive_start(struct fs *fs);
/* Stops and joins the thread; safe when it was never started. */
void fs_keepalive_stop(struct fs *fs);

/* trim.c: asks the kernel to forget cold files while the table holds
 * more than node_max nodes (no thread when node_max is 0 or with -s). */
int fs_trim_start(struct fs *fs);
/* Stops and joins the thread; safe when it was never started. */
void fs_trim_stop(struct fs *fs);

/*
 * health.c: requests the daemon can do without (a listing the cache can
 * stand in for, an attached sandbox's re-confirmation) ask
 * fs_health_silent() first and do not wait on the server while it is
 * true; requests report fs_health_failed(r) (counted only when r says no
 * answer came) and fs_health_answered().
 */
bool fs_health_silent(struct fs *fs);
/* Does r say that no answer came (timeout, refused, reset, no route)? */
bool fs_health_no_answer(int r);
void fs_health_failed(struct fs *fs, int r);
void fs_health_answered(struct fs *fs);

/* ops.c: the operation table handed to fuse_session_new(). */
extern const struct fuse_lowlevel_ops fs_ops;

struct fs_sandbox;
struct fs_op;
/* ops.c: fs_sandbox_note_op() with op's paths built for a by_path layer
 * (sandbox.h); ops.c's handlers and the layer's tests call it. */
void fs_op_note(struct fs_sandbox *sb, struct fs_op *op);

/* fuse_entry_param / attribute timeouts for workspace nodes. */
double fs_entry_timeout(const struct fs *fs);
double fs_attr_timeout(const struct fs *fs);

#endif
