/*
 * inode.h - the inode table: every node the kernel knows by a nodeid.
 *
 * Kinds:
 *   ROOT     the mount root listing sandboxes (absent with -o session=)
 *   SANDBOX  a sandbox's workspace root (the FUSE root with session=)
 *   WS       a file, directory or symlink inside a workspace, reached by
 *            an O_PATH descriptor (cached, see below) and keyed by
 *            (sandbox, st_dev, st_ino) so hard links share one node
 *   NOXDIR   the virtual .nox directory of a sandbox
 *   CTL      one control file in .nox
 *
 * The nodeid given to the kernel is the node's address (FUSE_ROOT_ID for
 * the root), as in libfuse's passthrough_ll.  A node lives while the
 * kernel holds lookups on it (nlookup) or other nodes name it as their
 * parent (refs); then it is freed and its descriptor closed.  For each
 * node the (parent, name) of its latest lookup is kept so the exec path
 * can invalidate the kernel's dentry, and so a full path can be rebuilt
 * for the cache layer (fs_node_path).  A hard link with several names is
 * only tracked under the last one looked up (that name may have gone
 * since: ops.c looks for a live one before handing a path to the layer).
 *
 * Descriptors are bounded by the work in flight, not by the nodes the
 * kernel remembers: a WS node keeps the file handle of its file
 * (name_to_handle_at) and its O_PATH descriptor only while it is pinned
 * (fs_node_fd .. fs_node_fd_put, or a FUSE handle open on it) or among
 * the fd_cache (FS_FD_CACHE) most recently used; beyond that the least recently
 * used descriptor is closed and reopened from the handle on the next use
 * (open_by_handle_at, which needs CAP_DAC_READ_SEARCH).  A daemon without
 * that capability, or a file system without file handles, keeps every
 * descriptor as before.
 */
#ifndef NOXFS_INODE_H
#define NOXFS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>

struct fs_sandbox;

enum fs_kind { FS_ROOT, FS_SANDBOX, FS_WS, FS_NOXDIR, FS_CTL };

enum fs_ctl {
	FS_CTL_EXEC,
	FS_CTL_STDOUT,
	FS_CTL_STDERR,
	FS_CTL_STATUS,
	FS_CTL_INFO,
	FS_CTL_SYNC,
	FS_CTL__COUNT
};

struct fs_node {
	fuse_ino_t ino;	       /* immutable */
	enum fs_kind kind;     /* immutable */
	enum fs_ctl ctl;       /* immutable; FS_CTL only */
	struct fs_sandbox *sb; /* immutable; a reference (not ROOT) */
	struct file_handle *fh; /* immutable; NULL: fd is never closed */
	/* protected by table->fdmu: the descriptor cache */
	int fd;		 /* O_PATH; -1 if virtual or closed (fh set) */
	unsigned fd_pins; /* fs_node_fd users and open FUSE handles */
	bool fd_dead;	  /* freed from the table while pinned: the last
			   * fs_node_fd_put frees it */
	struct fs_node *lru_prev, *lru_next; /* unpinned, fd open, fh set */
	dev_t dev;	       /* immutable key, with sino */
	ino_t sino;
	mode_t type; /* immutable S_IFMT bits */

	/* protected by table->mutex */
	uint64_t nlookup;	/* kernel references */
	unsigned refs;		/* children pointing here + pins */
	struct fs_node *parent; /* of the last lookup; holds a ref */
	char *name;		/* of the last lookup; malloc'd */
	struct fs_node *hnext;	/* hash chain */
	bool open_seen;		/* keep_cache: attributes at last open */
	struct timespec open_mtime;
	off_t open_size;
	/* the exec barrier's write-back set (see fs_table_collect_wb) */
	unsigned wopen; /* FUSE handles open for writing */
	bool wdirty;	/* write-opened since the last barrier */
	/* what the daemon last served for it (fs_node_note_attr) */
	bool att_seen;
	struct timespec att_ctim;
	struct timespec att_mtim;
	off_t att_size;
	nlink_t att_nlink;
	ino_t att_ino;
	/* the node budget (trim.c): looked up since the last sweep; its
	 * entry was invalidated and no lookup came since */
	bool trim_seen;
	bool trim_sent;
};

/*
 * An open file or directory handle the daemon allocated (fi->fh), linked
 * into the table so the ones the kernel never released (the daemon was
 * stopped with files open) are freed at exit.
 */
struct fs_handle {
	struct fs_handle *prev; /* protected by table->hmutex */
	struct fs_handle *next;
	void (*free)(struct fs_handle *h); /* immutable */
};

/* Unpinned node descriptors kept open by default (-o fd_cache=N). */
#define FS_FD_CACHE 1024u
/* Nodes the kernel may hold before the budget asks it to forget some
 * (-o node_max=N; 0: no budget).  About 300 bytes of the daemon each:
 * 16,384 are 5 MiB (65,536 were 20, a third of the 64 MiB the daemon
 * has for a walk of 1,000,000 files; docs/design.md). */
#define FS_NODE_MAX 16384u

struct fs_table {
	pthread_mutex_t fdmu; /* a leaf: nothing is taken while held */
	struct fs_node *lru_head, *lru_tail; /* protected by fdmu */
	size_t lru_count;		      /* protected by fdmu */
	size_t fd_cache; /* immutable after init: FS_FD_CACHE or -o fd_cache */
	int by_handle;	/* protected by fdmu: 1 usable, 0 unknown, -1 not */
	struct fs_mntfd {
		dev_t dev;
		int fd;
	} mntfd[8];	/* protected by fdmu: open_by_handle_at's mount_fd */
	size_t nmntfd;
	pthread_mutex_t hmutex;
	struct fs_handle *handles; /* protected by hmutex */
	pthread_mutex_t mutex;
	struct fs_node **buckets; /* protected by mutex */
	size_t nbuckets;	  /* protected by mutex */
	size_t count;		  /* protected by mutex */
	size_t nwdirty;		  /* nodes with wdirty; protected by mutex */
	struct fs_node *root;	  /* FUSE_ROOT_ID; immutable once set */
	/* the node budget (trim.c) */
	size_t node_max; /* immutable after init: FS_NODE_MAX or -o node_max */
	pthread_cond_t trim_cond; /* with mutex: count went over node_max */
	bool trim_stop;		  /* protected by mutex */
	size_t trim_at;		  /* protected by mutex: the sweep's bucket */
};

/*
 * Take / release t->mutex (tablelock.c).  Debug builds count what this
 * thread holds, so other modules can assert the lock order (cache_i.h):
 * table.mutex is a leaf but for fdmu, no lock of theirs inside it.
 */
void fs_table_lock(struct fs_table *t);
void fs_table_unlock(struct fs_table *t);
/* Debug builds: whether this thread holds a table's mutex (always false
 * with NDEBUG). */
bool fs_table_held(void);

/* 0 or -ENOMEM.  The root node is set later with fs_table_make_root(). */
int fs_table_init(struct fs_table *t);
/* Links h (its free set) into / out of the table's open handles. */
void fs_table_handle_add(struct fs_table *t, struct fs_handle *h);
void fs_table_handle_del(struct fs_table *t, struct fs_handle *h);

/* Frees every handle and node still in the table (at exit), not the
 * struct. */
void fs_table_cleanup(struct fs_table *t);

/*
 * Creates the FUSE root node (ino 1): ROOT, or with session= the SANDBOX
 * node of sb (fd: its root directory, taken over).  It lives until
 * fs_table_cleanup().  0 or -ENOMEM.
 */
int fs_table_make_root(struct fs_table *t, enum fs_kind kind,
		       struct fs_sandbox *sb, int fd, const struct stat *st);

/* The node of a nodeid the kernel sent; never NULL for a valid id. */
struct fs_node *fs_node_get(struct fs_table *t, fuse_ino_t ino);

/*
 * Finds or adds the node keyed by (sb, kind, st->st_dev, st->st_ino) —
 * for virtual kinds the key is (sb, kind, ctl) — and counts one kernel
 * lookup on it (a virtual node with st given is keyed by st's dev and
 * ino instead: a fresh node per lookup).  fd (O_PATH; -1 for virtual
 * kinds) is taken over:
 * kept by a new node, closed when the node existed.  parent/name record
 * the lookup (parent may be NULL).  For SANDBOX and WS nodes st is also
 * recorded as what the kernel is given (fs_node_note_attr).  Returns NULL
 * (fd closed) on ENOMEM.
 */
struct fs_node *fs_node_lookup_add(struct fs_table *t, struct fs_sandbox *sb,
				   enum fs_kind kind, enum fs_ctl ctl, int fd,
				   const struct stat *st,
				   struct fs_node *parent, const char *name);

/*
 * n's O_PATH descriptor, pinned (never closed) until fs_node_fd_put();
 * reopened from n's file handle if the cache closed it.  -ESTALE when
 * the file is gone, -EBADF for a virtual node, or -errno.  While pinned,
 * n->fd may be read without a lock, and n outlives a forget: a node
 * the kernel forgets while pinned is freed by the last put.
 */
int fs_node_fd(struct fs_table *t, struct fs_node *n);
void fs_node_fd_put(struct fs_table *t, struct fs_node *n);

/* Finds the WS node of (sb, dev, ino) without counting a lookup. */
struct fs_node *fs_node_find(struct fs_table *t, struct fs_sandbox *sb,
			     dev_t dev, ino_t sino);
/* True when the WS node of (sb, dev, ino) is pinned: a FUSE handle is
 * open on it or an operation uses its descriptor (the cache's eviction
 * leaves such files alone). */
bool fs_node_pinned(struct fs_table *t, struct fs_sandbox *sb, dev_t dev,
		    ino_t sino);

/* Records that n is now known as parent/name (rename). */
void fs_node_set_name(struct fs_table *t, struct fs_node *n,
		      struct fs_node *parent, const char *name);

/* Drops nlookup kernel references (forget); may free the node. */
void fs_node_forget(struct fs_table *t, struct fs_node *n, uint64_t nlookup);

/*
 * Writes n's workspace-relative path ("" for the sandbox root) into buf.
 * -ENAMETOOLONG if it does not fit, -ENOENT if the chain is broken (the
 * node was never looked up by name).
 */
int fs_node_path(struct fs_table *t, struct fs_node *n, char *buf, size_t size);

/*
 * Records st as what the kernel was just given for n (an entry or
 * attribute reply), for fs_table_collect_changed.  Virtual nodes: no-op.
 */
void fs_node_note_attr(struct fs_table *t, struct fs_node *n,
		       const struct stat *st);

/*
 * A FUSE handle of n opened with flags was handed to the kernel / was
 * released: counts the handles open for writing (O_WRONLY, O_RDWR) and
 * marks n write-dirty while one is open.
 */
void fs_node_open_note(struct fs_table *t, struct fs_node *n, int flags);
void fs_node_release_note(struct fs_table *t, struct fs_node *n, int flags);
/* The handle also pins n's descriptor: fs_node_open_note takes a pin,
 * fs_node_release_note gives it back (call it after the release hooks). */

/* What the exec path needs to invalidate one node (see barrier.c). */
struct fs_inval {
	fuse_ino_t ino;
	fuse_ino_t parent; /* 0: no entry to invalidate */
	char *name;	   /* malloc'd or NULL */
	bool dir;
	bool reg;
	bool inode; /* false: the entry only (fs_table_collect_changed) */
};

/*
 * The node budget: waits (at most ms) until the table holds more than
 * node_max nodes or fs_table_trim_stop is called; the number of nodes
 * over 90 % of node_max, 0 when under or stopping.
 */
size_t fs_table_trim_wait(struct fs_table *t, int ms);
void fs_table_trim_stop(struct fs_table *t);
/*
 * Up to want WS nodes the kernel could forget: not directories, with no
 * child node, no FUSE handle or pinned descriptor, nothing to write
 * back, and not looked up since the previous sweep passed them (a clock:
 * recently used nodes get a second chance).  Each is marked sent until
 * its next lookup.  As fs_table_collect (entries only: parent and name).
 */
int fs_table_collect_trim(struct fs_table *t, size_t want,
			  struct fs_inval **out, size_t *n);

/* Frees an array of n invalidations and their names; NULL is a no-op. */
void fs_inval_free(struct fs_inval *v, size_t n);

/*
 * Collects every SANDBOX and WS node of sb into a malloc'd array (*out,
 * *n); the caller frees each name and the array.  0 or -ENOMEM.
 */
int fs_table_collect(struct fs_table *t, struct fs_sandbox *sb,
		     struct fs_inval **out, size_t *n);

/*
 * The exec barrier's write-back set: every node of sb that has a FUSE
 * handle open for writing, or had one since the last call (only those
 * can hold dirty pages: a shared writable mapping keeps its file open
 * until munmap, and munmap writes the pages back).  The mark of a node
 * with no write handle left is cleared.  As fs_table_collect (names are
 * not filled in); 0 with *n == 0 without walking the table when no node
 * is marked.
 */
int fs_table_collect_wb(struct fs_table *t, struct fs_sandbox *sb,
			struct fs_inval **out, size_t *n);

/*
 * After a command that started at start (CLOCK_REALTIME), the nodes of sb
 * whose kernel caches may be stale, as fs_table_collect: for each SANDBOX
 * and WS node its descriptor is fstat'ed (with the table mutex released)
 * and compared with what fs_node_note_attr recorded.  Collected, with
 * inode and entry: a node never recorded, one whose fstat fails, whose
 * nlink is 0, whose ctime, mtime, size, nlink or st_ino differ, and
 * every node whose recorded ctime is not older than start - 2 s (a
 * change within the same timestamp tick would leave ctime unchanged:
 * git's racy-clean rule).  Collected for the entry only (fs_inval.inode
 * false): every other node whose parent directory was collected, since
 * names in it may have changed.  Nodes freed meanwhile (the kernel forgot
 * them) are left out.  0 or -ENOMEM.
 */
int fs_table_collect_changed(struct fs_table *t, struct fs_sandbox *sb,
			     const struct timespec *start,
			     struct fs_inval **out, size_t *n);

/* The synthetic st_ino of a virtual node (stable per sandbox attach). */
ino_t fs_virtual_ino(const struct fs_sandbox *sb, enum fs_kind kind,
		     enum fs_ctl ctl);

#endif
