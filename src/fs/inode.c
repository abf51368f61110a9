/*
 * inode.c - the inode table (see inode.h for the node kinds and rules).
 *
 * One hash table keyed by (sandbox, kind, st_dev, st_ino) under one mutex,
 * as in passthrough_ll: lookups are short and never call out while the
 * mutex is held.  Freeing a node drops its parent's reference, which may
 * free the parent in turn (iteratively, no recursion), and its sandbox
 * reference; a sandbox whose last reference goes is destroyed after the
 * mutex is released.
 *
 * Each SANDBOX/WS node also keeps what the exec barrier needs to skip
 * what cannot have changed: its count of write handles and the
 * attributes last sent to the kernel (fs_table_collect_wb,
 * fs_table_collect_changed; rules in inode.h and barrier.c).
 *
 * Node descriptors are a cache (inode.h): an LRU list under its own leaf
 * mutex (fdmu) holds the unpinned ones, closed beyond t->fd_cache and
 * reopened from the node's file handle.  Lock order: table mutex, then
 * fdmu; nothing is taken while fdmu is held.
 *
 * Limits: the table grows (doubling) but never shrinks; file handles of
 * at most 8 file systems (one mount descriptor each, kept until exit).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nox/log.h>

#include "inode.h"
#include "sandbox.h"

#define TABLE_MIN_BUCKETS 1024u

int fs_table_init(struct fs_table *t)
{
	memset(t, 0, sizeof(*t));
	t->buckets = calloc(TABLE_MIN_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = TABLE_MIN_BUCKETS;
	pthread_mutex_init(&t->mutex, NULL);
	pthread_mutex_init(&t->hmutex, NULL);
	pthread_mutex_init(&t->fdmu, NULL);
	pthread_cond_init(&t->trim_cond, NULL);
	t->fd_cache = FS_FD_CACHE;
	t->node_max = FS_NODE_MAX;
	return 0;
}

/* ---- the descriptor cache ------------------------------------------- */

static void lru_del_locked(struct fs_table *t, struct fs_node *n)
{
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else if (t->lru_head == n)
		t->lru_head = n->lru_next;
	else
		return; /* not in the list */
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else
		t->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
	t->lru_count--;
}

/* Puts unpinned n (fd open, fh set) at the head; closes the oldest
 * descriptors beyond FS_FD_CACHE. */
static void lru_add_locked(struct fs_table *t, struct fs_node *n)
{
	n->lru_prev = NULL;
	n->lru_next = t->lru_head;
	if (t->lru_head)
		t->lru_head->lru_prev = n;
	else
		t->lru_tail = n;
	t->lru_head = n;
	t->lru_count++;
	while (t->lru_count > t->fd_cache) {
		struct fs_node *old = t->lru_tail;

		lru_del_locked(t, old);
		close(old->fd);
		old->fd = -1;
	}
}

/*
 * The mount descriptor for file handles of dev, or -1 (8 at most).  A
 * new one is the directory dirfd (an O_PATH descriptor will not do for
 * open_by_handle_at: EBADF) reopened for reading, if it is on dev.
 */
static int mntfd_locked(struct fs_table *t, dev_t dev, int dirfd)
{
	struct stat st;
	size_t i;
	int m;

	for (i = 0; i < t->nmntfd; i++)
		if (t->mntfd[i].dev == dev)
			return t->mntfd[i].fd;
	if (dirfd < 0 || t->nmntfd == sizeof(t->mntfd) / sizeof(t->mntfd[0]))
		return -1;
	m = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m < 0)
		return -1;
	if (fstat(m, &st) < 0 || st.st_dev != dev) {
		close(m);
		return -1;
	}
	t->mntfd[t->nmntfd].dev = dev;
	t->mntfd[t->nmntfd].fd = m;
	t->nmntfd++;
	return m;
}

/* n's file handle, or NULL where there is none to be had. */
static struct file_handle *handle_of(int fd)
{
	struct file_handle *fh;
	unsigned size = 64;
	int mnt;

	for (;;) {
		fh = malloc(sizeof(*fh) + size);
		if (!fh)
			return NULL;
		fh->handle_bytes = size;
		if (name_to_handle_at(fd, "", fh, &mnt, AT_EMPTY_PATH) == 0)
			return fh;
		size = fh->handle_bytes;
		free(fh);
		if (errno != EOVERFLOW || size > MAX_HANDLE_SZ)
			return NULL;
	}
}

/*
 * Gives new node n (its descriptor open, unpinned) a file handle and puts
 * it in the cache.  The first handle of the daemon is tried at once: a
 * daemon that cannot open by handle keeps every descriptor.
 */
static void fd_cache_add(struct fs_table *t, struct fs_node *n)
{
	struct file_handle *fh;
	int m, fd;

	pthread_mutex_lock(&t->fdmu);
	if (t->by_handle < 0 || n->fd < 0 || n->fh) {
		pthread_mutex_unlock(&t->fdmu);
		return;
	}
	pthread_mutex_unlock(&t->fdmu);
	fh = handle_of(n->fd);
	if (!fh)
		return;
	pthread_mutex_lock(&t->fdmu);
	m = mntfd_locked(t, n->dev, n->sb ? n->sb->root_fd : -1);
	if (m >= 0 && t->by_handle == 0) {
		fd = open_by_handle_at(m, fh, O_PATH | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			t->by_handle = 1;
		} else {
			nox_log(NOX_LOG_INFO,
				"open_by_handle_at: %s: one descriptor per "
				"node the kernel remembers",
				strerror(errno));
			t->by_handle = -1;
		}
	}
	if (m < 0 || t->by_handle < 0 || n->fh || n->fd < 0) {
		pthread_mutex_unlock(&t->fdmu);
		free(fh);
		return;
	}
	n->fh = fh;
	if (n->fd_pins == 0)
		lru_add_locked(t, n);
	pthread_mutex_unlock(&t->fdmu);
}

static void node_free_fd(struct fs_node *n)
{
	if (n->fd >= 0)
		close(n->fd);
	free(n->fh);
	free(n);
}

/*
 * Frees n (unlinked from the table, its name and references dropped),
 * with its descriptor and handle; a node still pinned by a request in
 * flight is left to its last fs_node_fd_put().  at_exit: free it anyway.
 */
static void node_free_locked(struct fs_table *t, struct fs_node *n,
			     bool at_exit)
{
	pthread_mutex_lock(&t->fdmu);
	lru_del_locked(t, n);
	if (n->fd_pins > 0 && !at_exit) {
		n->fd_dead = true;
		n = NULL;
	}
	pthread_mutex_unlock(&t->fdmu);
	if (n)
		node_free_fd(n);
}

int fs_node_fd(struct fs_table *t, struct fs_node *n)
{
	int fd, m, r;

	pthread_mutex_lock(&t->fdmu);
	if (n->fd < 0 && n->fh) {
		m = mntfd_locked(t, n->dev, -1);
		fd = m < 0 ? -1
			   : open_by_handle_at(m, n->fh, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			r = m < 0 || errno == ENOENT ? -ESTALE : -errno;
			pthread_mutex_unlock(&t->fdmu);
			return r;
		}
		n->fd = fd;
	} else if (n->fd >= 0 && n->fd_pins == 0) {
		lru_del_locked(t, n);
	}
	fd = n->fd;
	if (fd < 0) {
		pthread_mutex_unlock(&t->fdmu);
		return -EBADF;
	}
	n->fd_pins++;
	pthread_mutex_unlock(&t->fdmu);
	return fd;
}

void fs_node_fd_put(struct fs_table *t, struct fs_node *n)
{
	bool dead = false;

	pthread_mutex_lock(&t->fdmu);
	if (n->fd_pins > 0 && --n->fd_pins == 0) {
		if (n->fd_dead)
			dead = true;
		else if (n->fh && n->fd >= 0)
			lru_add_locked(t, n);
	}
	pthread_mutex_unlock(&t->fdmu);
	if (dead)
		node_free_fd(n);
}

void fs_table_handle_add(struct fs_table *t, struct fs_handle *h)
{
	pthread_mutex_lock(&t->hmutex);
	h->prev = NULL;
	h->next = t->handles;
	if (t->handles)
		t->handles->prev = h;
	t->handles = h;
	pthread_mutex_unlock(&t->hmutex);
}

void fs_table_handle_del(struct fs_table *t, struct fs_handle *h)
{
	pthread_mutex_lock(&t->hmutex);
	if (h->prev)
		h->prev->next = h->next;
	else
		t->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	pthread_mutex_unlock(&t->hmutex);
}

/* Frees the handles left open; each free unlinks itself. */
static void table_free_handles(struct fs_table *t)
{
	for (;;) {
		struct fs_handle *h;

		pthread_mutex_lock(&t->hmutex);
		h = t->handles;
		pthread_mutex_unlock(&t->hmutex);
		if (!h)
			break;
		h->free(h);
	}
}

static size_t node_hash(const struct fs_sandbox *sb, enum fs_kind kind,
			uint64_t dev, uint64_t sino)
{
	uint64_t h = (uint64_t)(uintptr_t)sb * 0x9e3779b97f4a7c15ull;

	h ^= (uint64_t)kind + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
	h ^= dev * 0xc2b2ae3d27d4eb4full + (h << 6) + (h >> 2);
	h ^= sino * 0x165667b19e3779f9ull + (h << 6) + (h >> 2);
	return (size_t)(h ^ (h >> 29));
}

static size_t node_bucket(const struct fs_table *t, const struct fs_node *n)
{
	uint64_t dev = n->dev, sino = n->sino;

	return node_hash(n->sb, n->kind, dev, sino) & (t->nbuckets - 1);
}

/* Doubles the bucket array; failure just keeps the old (longer chains). */
static void table_grow_locked(struct fs_table *t)
{
	size_t nb = t->nbuckets * 2, i;
	struct fs_node **nbk = calloc(nb, sizeof(*nbk));
	struct fs_node **old = t->buckets;
	size_t oldn = t->nbuckets;

	if (!nbk)
		return;
	t->buckets = nbk;
	t->nbuckets = nb;
	for (i = 0; i < oldn; i++) {
		struct fs_node *n = old[i], *next;

		for (; n; n = next) {
			size_t b = node_bucket(t, n);

			next = n->hnext;
			n->hnext = nbk[b];
			nbk[b] = n;
		}
	}
	free(old);
}

static void table_unlink_locked(struct fs_table *t, struct fs_node *n)
{
	struct fs_node **pp = &t->buckets[node_bucket(t, n)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			t->count--;
			return;
		}
	}
}

/* Sandboxes whose last reference went while the mutex was held. */
struct dead_list {
	struct fs_sandbox *sb[8];
	size_t n;
};

static void dead_flush(struct dead_list *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		fs_sandbox_destroy(d->sb[i]);
	d->n = 0;
}

static bool node_unused(const struct fs_node *n)
{
	return n->nlookup == 0 && n->refs == 0;
}

/*
 * Frees n (unused, not the root) and walks up parents that become unused.
 * A sandbox left without references is queued on dead; when the queue is
 * full the caller's mutex must be released to flush it, so we stop there
 * and the caller loops (rare: 8 sandboxes freed by one forget).
 */
static void node_free_chain_locked(struct fs_table *t, struct fs_node *n,
				   struct dead_list *dead)
{
	while (n && n != t->root && node_unused(n)) {
		struct fs_node *parent = n->parent;

		table_unlink_locked(t, n);
		if (n->wdirty)
			t->nwdirty--;
		free(n->name);
		n->name = NULL;
		if (n->sb && fs_sandbox_unref_locked(n->sb) &&
		    dead->n < sizeof(dead->sb) / sizeof(dead->sb[0]))
			dead->sb[dead->n++] = n->sb;
		n->parent = NULL;
		node_free_locked(t, n, false);
		if (!parent)
			break;
		parent->refs--;
		n = parent;
	}
}

int fs_table_make_root(struct fs_table *t, enum fs_kind kind,
		       struct fs_sandbox *sb, int fd, const struct stat *st)
{
	struct fs_node *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->ino = FUSE_ROOT_ID;
	n->kind = kind;
	n->sb = sb;
	n->fd = fd;
	n->type = S_IFDIR;
	if (st) {
		n->dev = st->st_dev;
		n->sino = st->st_ino;
	}
	fs_table_lock(t);
	if (sb)
		fs_sandbox_ref_locked(sb);
	n->nlookup = 1;
	t->root = n;
	fs_table_unlock(t);
	return 0;
}

void fs_table_cleanup(struct fs_table *t)
{
	struct dead_list dead = {.n = 0};
	size_t i;

	if (!t->buckets)
		return;
	table_free_handles(t);
	fs_table_lock(t);
	for (i = 0; i < t->nbuckets; i++) {
		struct fs_node *n, *next;

		for (n = t->buckets[i]; n; n = next) {
			next = n->hnext;
			free(n->name);
			if (n->sb && fs_sandbox_unref_locked(n->sb) &&
			    dead.n < sizeof(dead.sb) / sizeof(dead.sb[0]))
				dead.sb[dead.n++] = n->sb;
			node_free_locked(t, n, true);
			if (dead.n == sizeof(dead.sb) / sizeof(dead.sb[0])) {
				fs_table_unlock(t);
				dead_flush(&dead);
				fs_table_lock(t);
			}
		}
		t->buckets[i] = NULL;
	}
	t->count = 0;
	t->nwdirty = 0;
	if (t->root && t->root->ino == FUSE_ROOT_ID) {
		/* the root is not in the hash: free it here */
		struct fs_node *r = t->root;

		if (r->fd >= 0)
			close(r->fd);
		if (r->sb && fs_sandbox_unref_locked(r->sb) &&
		    dead.n < sizeof(dead.sb) / sizeof(dead.sb[0]))
			dead.sb[dead.n++] = r->sb;
		free(r->name);
		free(r);
	}
	t->root = NULL;
	fs_table_unlock(t);
	dead_flush(&dead);
	free(t->buckets);
	t->buckets = NULL;
	for (i = 0; i < t->nmntfd; i++)
		close(t->mntfd[i].fd);
	t->nmntfd = 0;
	pthread_mutex_destroy(&t->fdmu);
	pthread_cond_destroy(&t->trim_cond);
	pthread_mutex_destroy(&t->mutex);
	pthread_mutex_destroy(&t->hmutex);
}

struct fs_node *fs_node_get(struct fs_table *t, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return t->root;
	return (struct fs_node *)(uintptr_t)ino;
}

static struct fs_node *find_locked(struct fs_table *t,
				   const struct fs_sandbox *sb,
				   enum fs_kind kind, uint64_t dev,
				   uint64_t sino)
{
	struct fs_node *n =
	    t->buckets[node_hash(sb, kind, dev, sino) & (t->nbuckets - 1)];

	for (; n; n = n->hnext) {
		if (n->sb == sb && n->kind == kind && n->dev == dev &&
		    n->sino == sino)
			return n;
	}
	return NULL;
}

static bool real_kind(enum fs_kind kind)
{
	return kind == FS_WS || kind == FS_SANDBOX;
}

static void note_attr_locked(struct fs_node *n, const struct stat *st)
{
	n->att_seen = true;
	n->att_ctim = st->st_ctim;
	n->att_mtim = st->st_mtim;
	n->att_size = st->st_size;
	n->att_nlink = st->st_nlink;
	n->att_ino = st->st_ino;
}

/* Sets parent/name under the mutex; keeps the old name on ENOMEM. */
static void set_name_locked(struct fs_node *n, struct fs_node *parent,
			    const char *name, struct dead_list *dead,
			    struct fs_table *t)
{
	struct fs_node *old = n->parent;
	char *copy;

	if (!name || parent == n)
		return;
	if (old == parent && n->name && strcmp(n->name, name) == 0)
		return;
	copy = strdup(name);
	if (!copy)
		return;
	free(n->name);
	n->name = copy;
	if (parent)
		parent->refs++;
	n->parent = parent;
	if (old) {
		old->refs--;
		node_free_chain_locked(t, old, dead);
	}
}

struct fs_node *fs_node_lookup_add(struct fs_table *t, struct fs_sandbox *sb,
				   enum fs_kind kind, enum fs_ctl ctl, int fd,
				   const struct stat *st,
				   struct fs_node *parent, const char *name)
{
	struct dead_list dead = {.n = 0};
	uint64_t dev = 0, sino = 0;
	struct fs_node *n;

	if (kind == FS_NOXDIR || kind == FS_CTL) {
		/* st, when given, is a caller-made unique key */
		dev = st ? (uint64_t)st->st_dev : 0;
		sino = st ? (uint64_t)st->st_ino : (uint64_t)ctl + 1;
	} else if (st) {
		dev = st->st_dev;
		sino = st->st_ino;
	}
	fs_table_lock(t);
	n = find_locked(t, sb, kind, dev, sino);
	if (n) {
		n->nlookup++;
		n->trim_seen = true;
		n->trim_sent = false;
		if (fd >= 0) {
			/* a node whose descriptor the cache closed takes the
			 * one this lookup opened */
			pthread_mutex_lock(&t->fdmu);
			if (n->fd < 0 && n->fh) {
				n->fd = fd;
				fd = -1;
				if (n->fd_pins == 0)
					lru_add_locked(t, n);
			}
			pthread_mutex_unlock(&t->fdmu);
			if (fd >= 0)
				close(fd);
		}
		if (st && real_kind(kind))
			note_attr_locked(n, st);
		set_name_locked(n, parent, name, &dead, t);
		fs_table_unlock(t);
		dead_flush(&dead);
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		fs_table_unlock(t);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	n->ino = (fuse_ino_t)(uintptr_t)n;
	n->kind = kind;
	n->ctl = ctl;
	n->sb = sb;
	n->fd = fd;
	n->dev = (dev_t)dev;
	n->sino = (ino_t)sino;
	if (kind == FS_CTL)
		n->type = S_IFREG;
	else if (kind == FS_NOXDIR)
		n->type = S_IFDIR;
	else
		n->type = st ? (st->st_mode & S_IFMT) : S_IFDIR;
	n->nlookup = 1;
	if (st && real_kind(kind))
		note_attr_locked(n, st);
	if (sb)
		fs_sandbox_ref_locked(sb);
	set_name_locked(n, parent, name, &dead, t);
	{
		size_t b = node_bucket(t, n);

		n->hnext = t->buckets[b];
		t->buckets[b] = n;
	}
	if (++t->count > t->nbuckets)
		table_grow_locked(t);
	n->trim_seen = true;
	if (t->node_max && t->count == t->node_max + 1)
		pthread_cond_signal(&t->trim_cond);
	fs_table_unlock(t);
	dead_flush(&dead);
	if (kind == FS_WS)
		fd_cache_add(t, n);
	return n;
}

struct fs_node *fs_node_find(struct fs_table *t, struct fs_sandbox *sb,
			     dev_t dev, ino_t sino)
{
	struct fs_node *n;

	fs_table_lock(t);
	n = find_locked(t, sb, FS_WS, dev, sino);
	fs_table_unlock(t);
	return n;
}

bool fs_node_pinned(struct fs_table *t, struct fs_sandbox *sb, dev_t dev,
		    ino_t sino)
{
	struct fs_node *n;
	bool pinned = false;

	pthread_mutex_lock(&t->mutex);
	n = find_locked(t, sb, FS_WS, dev, sino);
	if (n) {
		pthread_mutex_lock(&t->fdmu);
		pinned = n->fd_pins > 0;
		pthread_mutex_unlock(&t->fdmu);
	}
	pthread_mutex_unlock(&t->mutex);
	return pinned;
}

void fs_node_note_attr(struct fs_table *t, struct fs_node *n,
		       const struct stat *st)
{
	if (!real_kind(n->kind))
		return;
	fs_table_lock(t);
	note_attr_locked(n, st);
	fs_table_unlock(t);
}

static bool flags_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

void fs_node_open_note(struct fs_table *t, struct fs_node *n, int flags)
{
	if (n->kind == FS_WS)
		(void)fs_node_fd(t, n); /* the open's pin; it was pinned */
	if (!flags_write(flags))
		return;
	fs_table_lock(t);
	n->wopen++;
	if (!n->wdirty) {
		n->wdirty = true;
		t->nwdirty++;
	}
	fs_table_unlock(t);
}

void fs_node_release_note(struct fs_table *t, struct fs_node *n, int flags)
{
	if (n->kind == FS_WS)
		fs_node_fd_put(t, n);
	if (!flags_write(flags))
		return;
	fs_table_lock(t);
	if (n->wopen > 0)
		n->wopen--;
	fs_table_unlock(t);
}

void fs_node_set_name(struct fs_table *t, struct fs_node *n,
		      struct fs_node *parent, const char *name)
{
	struct dead_list dead = {.n = 0};

	fs_table_lock(t);
	set_name_locked(n, parent, name, &dead, t);
	fs_table_unlock(t);
	dead_flush(&dead);
}

void fs_node_forget(struct fs_table *t, struct fs_node *n, uint64_t nlookup)
{
	struct dead_list dead = {.n = 0};

	fs_table_lock(t);
	if (n == t->root) {
		fs_table_unlock(t);
		return;
	}
	n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
	if (node_unused(n))
		node_free_chain_locked(t, n, &dead);
	fs_table_unlock(t);
	dead_flush(&dead);
}

int fs_node_path(struct fs_table *t, struct fs_node *n, char *buf, size_t size)
{
	const struct fs_node *parts[PATH_MAX / 2];
	size_t np = 0, len = 0, i;
	int ret = 0;

	if (size == 0)
		return -ENAMETOOLONG;
	fs_table_lock(t);
	while (n && n->kind == FS_WS) {
		if (!n->name || !n->parent ||
		    np == sizeof(parts) / sizeof(parts[0])) {
			ret = n->name ? -ENAMETOOLONG : -ENOENT;
			goto out;
		}
		parts[np++] = n;
		n = n->parent;
	}
	if (!n || n->kind != FS_SANDBOX) {
		ret = -ENOENT;
		goto out;
	}
	for (i = np; i-- > 0;) {
		size_t l = strlen(parts[i]->name);

		if (len + l + 2 > size) {
			ret = -ENAMETOOLONG;
			goto out;
		}
		if (len)
			buf[len++] = '/';
		memcpy(buf + len, parts[i]->name, l);
		len += l;
	}
	buf[len] = '\0';
out:
	fs_table_unlock(t);
	return ret;
}

int fs_table_collect(struct fs_table *t, struct fs_sandbox *sb,
		     struct fs_inval **out, size_t *nout)
{
	struct fs_inval *v = NULL;
	size_t n = 0, cap = 0, i;
	int ret = 0;

	fs_table_lock(t);
	for (i = 0; i < t->nbuckets; i++) {
		struct fs_node *x;

		for (x = t->buckets[i]; x; x = x->hnext) {
			if (x->sb != sb ||
			    (x->kind != FS_WS && x->kind != FS_SANDBOX))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct fs_inval *nv =
				    realloc(v, nc * sizeof(*v));

				if (!nv) {
					ret = -ENOMEM;
					goto out;
				}
				v = nv;
				cap = nc;
			}
			v[n].ino = x->ino;
			v[n].parent = 0;
			v[n].name = NULL;
			v[n].dir = x->type == S_IFDIR;
			v[n].reg = x->type == S_IFREG;
			v[n].inode = true;
			/* a sandbox's own entry at the mount root is stable */
			if (x->kind == FS_WS && x->parent && x->name) {
				v[n].name = strdup(x->name);
				if (v[n].name)
					v[n].parent = x->parent->ino;
			}
			n++;
		}
	}
	/* the root, if it is this sandbox's, is not in the hash */
	if (t->root && t->root->sb == sb && t->root->kind == FS_SANDBOX) {
		bool seen = false;

		for (i = 0; i < n; i++)
			seen = seen || v[i].ino == FUSE_ROOT_ID;
		if (!seen && n == cap) {
			struct fs_inval *nv =
			    realloc(v, (cap + 1) * sizeof(*v));

			if (!nv) {
				ret = -ENOMEM;
				goto out;
			}
			v = nv;
			cap++;
		}
		if (!seen) {
			v[n].ino = FUSE_ROOT_ID;
			v[n].parent = 0;
			v[n].name = NULL;
			v[n].dir = true;
			v[n].reg = false;
			v[n].inode = true;
			n++;
		}
	}
out:
	fs_table_unlock(t);
	if (ret < 0) {
		fs_inval_free(v, n);
		return ret;
	}
	*out = v;
	*nout = n;
	return 0;
}

size_t fs_table_trim_wait(struct fs_table *t, int ms)
{
	struct timespec until;
	size_t low, over = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	fs_table_lock(t);
	if (!t->trim_stop && (!t->node_max || t->count <= t->node_max))
		(void)pthread_cond_timedwait(&t->trim_cond, &t->mutex, &until);
	low = t->node_max - t->node_max / 10;
	if (!t->trim_stop && t->node_max && t->count > t->node_max)
		over = t->count - low;
	fs_table_unlock(t);
	return over;
}

void fs_table_trim_stop(struct fs_table *t)
{
	fs_table_lock(t);
	t->trim_stop = true;
	pthread_cond_broadcast(&t->trim_cond);
	fs_table_unlock(t);
}

/* With t's mutex: may the kernel be asked to forget n? */
static bool trim_candidate_locked(struct fs_table *t, struct fs_node *n)
{
	bool pinned;

	if (n->kind != FS_WS || S_ISDIR(n->type) || n->trim_sent || n->refs ||
	    n->wopen || n->wdirty || !n->parent || !n->name || n->nlookup == 0)
		return false;
	pthread_mutex_lock(&t->fdmu);
	pinned = n->fd_pins > 0;
	pthread_mutex_unlock(&t->fdmu);
	return !pinned;
}

int fs_table_collect_trim(struct fs_table *t, size_t want,
			  struct fs_inval **out, size_t *nout)
{
	struct fs_inval *v = NULL;
	size_t n = 0, cap = 0, visited = 0, limit;
	int r = 0;

	fs_table_lock(t);
	/* twice round at most: the first pass may only clear marks */
	limit = 2 * t->nbuckets;
	while (n < want && visited++ < limit) {
		struct fs_node *x;

		if (t->trim_at >= t->nbuckets)
			t->trim_at = 0;
		for (x = t->buckets[t->trim_at]; x && n < want; x = x->hnext) {
			if (!trim_candidate_locked(t, x))
				continue;
			if (x->trim_seen) {
				x->trim_seen = false;
				continue;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 256;
				struct fs_inval *nv =
				    realloc(v, nc * sizeof(*nv));

				if (!nv) {
					r = -ENOMEM;
					break;
				}
				v = nv;
				cap = nc;
			}
			memset(&v[n], 0, sizeof(v[n]));
			v[n].name = strdup(x->name);
			if (!v[n].name) {
				r = -ENOMEM;
				break;
			}
			v[n].ino = x->ino;
			v[n].parent = x->parent->ino;
			v[n].reg = S_ISREG(x->type);
			x->trim_sent = true;
			n++;
		}
		if (r < 0)
			break;
		t->trim_at++;
	}
	fs_table_unlock(t);
	if (r < 0) {
		fs_inval_free(v, n);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}

void fs_inval_free(struct fs_inval *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

int fs_table_collect_wb(struct fs_table *t, struct fs_sandbox *sb,
			struct fs_inval **out, size_t *nout)
{
	struct fs_inval *v;
	size_t n = 0, seen = 0, i;

	*out = NULL;
	*nout = 0;
	fs_table_lock(t);
	if (t->nwdirty == 0) {
		fs_table_unlock(t);
		return 0;
	}
	/* at most every marked node: nothing is cleared unless collected */
	v = calloc(t->nwdirty, sizeof(*v));
	if (!v) {
		fs_table_unlock(t);
		return -ENOMEM;
	}
	for (i = 0; i < t->nbuckets && seen < t->nwdirty; i++) {
		struct fs_node *x;

		for (x = t->buckets[i]; x; x = x->hnext) {
			if (!x->wdirty)
				continue;
			seen++;
			if (x->sb != sb)
				continue;
			v[n].ino = x->ino;
			v[n].reg = true;
			v[n].inode = true;
			n++;
			if (x->wopen == 0) {
				x->wdirty = false;
				t->nwdirty--;
				seen--;
			}
		}
	}
	fs_table_unlock(t);
	if (n == 0) {
		free(v);
		return 0;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* One node's state for fs_table_collect_changed, copied under the mutex
 * (the node itself may be freed once it is released: only ino, as a
 * value, and fd, whose fstat is checked against dev/sino, are used). */
#define SNAP_FH_MAX 40
struct snap {
	fuse_ino_t ino;
	int fd;
	int mnt; /* with fh: the descriptor cache closed fd (-1) */
	union {
		struct file_handle fh;
		unsigned char b[sizeof(struct file_handle) + SNAP_FH_MAX];
	} h;
	bool seen;
	bool dir;
	bool changed;
	dev_t dev;
	ino_t sino;
	struct timespec ctim;
	struct timespec mtim;
	off_t size;
	nlink_t nlink;
};

static void snap_node(struct fs_table *t, struct snap *s,
		      const struct fs_node *x)
{
	s->ino = x->ino;
	s->mnt = -1;
	pthread_mutex_lock(&t->fdmu);
	s->fd = x->fd;
	if (s->fd < 0 && x->fh && x->fh->handle_bytes <= SNAP_FH_MAX) {
		s->mnt = mntfd_locked(t, x->dev, -1);
		memcpy(&s->h.fh, x->fh, sizeof(*x->fh) + x->fh->handle_bytes);
	}
	pthread_mutex_unlock(&t->fdmu);
	s->seen = x->att_seen;
	s->dir = x->type == S_IFDIR;
	s->changed = false;
	s->dev = x->dev;
	s->sino = x->sino;
	s->ctim = x->att_ctim;
	s->mtim = x->att_mtim;
	s->size = x->att_size;
	s->nlink = x->att_nlink;
	if (s->sino != x->att_ino)
		s->seen = false;
}

static bool ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* a >= b */
static bool ts_ge(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec >= b->tv_nsec);
}

/*
 * true when what the kernel was given for s may no longer hold: the
 * rule of fs_table_collect_changed (see inode.h).  racy is the exec's
 * start minus 2 s: a recorded ctime at or after it could share its
 * timestamp tick with a change the command made.
 */
static bool snap_changed(const struct snap *s, const struct timespec *racy)
{
	struct stat st;
	int fd, r;

	if (!s->seen)
		return true;
	if (s->fd >= 0) {
		r = fstatat(s->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	} else {
		/* its descriptor was closed by the cache: by its handle */
		if (s->mnt < 0)
			return true;
		fd = open_by_handle_at(s->mnt, (struct file_handle *)&s->h.fh,
				       O_PATH | O_CLOEXEC);
		if (fd < 0)
			return true;
		r = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		close(fd);
	}
	if (r < 0)
		return true;
	return st.st_nlink == 0 || st.st_dev != s->dev ||
	       st.st_ino != s->sino || st.st_size != s->size ||
	       st.st_nlink != s->nlink || !ts_eq(&st.st_ctim, &s->ctim) ||
	       !ts_eq(&st.st_mtim, &s->mtim) || ts_ge(&s->ctim, racy);
}

static int ino_cmp(const void *a, const void *b)
{
	fuse_ino_t x = *(const fuse_ino_t *)a, y = *(const fuse_ino_t *)b;

	return x < y ? -1 : x > y;
}

static bool ino_in(const fuse_ino_t *set, size_t n, fuse_ino_t ino)
{
	return n && bsearch(&ino, set, n, sizeof(*set), ino_cmp) != NULL;
}

/* Appends one entry to *v (growing it); 0 or -ENOMEM. */
static int inval_push(struct fs_inval **v, size_t *n, size_t *cap,
		      const struct fs_node *x, bool inode)
{
	struct fs_inval *e;

	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct fs_inval *nv = realloc(*v, nc * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	e = &(*v)[*n];
	memset(e, 0, sizeof(*e));
	e->ino = x->ino;
	e->dir = x->type == S_IFDIR;
	e->reg = x->type == S_IFREG;
	e->inode = inode;
	/* a sandbox's own entry at the mount root is stable */
	if (x->kind == FS_WS && x->parent && x->name) {
		e->name = strdup(x->name);
		if (e->name)
			e->parent = x->parent->ino;
	}
	(*n)++;
	return 0;
}

/* Phase 3 of fs_table_collect_changed: with the mutex held, the nodes
 * still there whose ino is in chg, and the children of those in dirs. */
static int collect_marked_locked(struct fs_table *t, struct fs_sandbox *sb,
				 const fuse_ino_t *chg, size_t nchg,
				 const fuse_ino_t *dirs, size_t ndirs,
				 struct fs_inval **v, size_t *n)
{
	size_t cap = 0, i;
	int r = 0;

	for (i = 0; r == 0 && i < t->nbuckets; i++) {
		struct fs_node *x;

		for (x = t->buckets[i]; r == 0 && x; x = x->hnext) {
			if (x->sb != sb || !real_kind(x->kind))
				continue;
			if (ino_in(chg, nchg, x->ino))
				r = inval_push(v, n, &cap, x, true);
			else if (x->parent &&
				 ino_in(dirs, ndirs, x->parent->ino))
				r = inval_push(v, n, &cap, x, false);
		}
	}
	if (r == 0 && t->root && t->root->sb == sb &&
	    t->root->kind == FS_SANDBOX && ino_in(chg, nchg, t->root->ino))
		r = inval_push(v, n, &cap, t->root, true);
	return r;
}

int fs_table_collect_changed(struct fs_table *t, struct fs_sandbox *sb,
			     const struct timespec *start,
			     struct fs_inval **out, size_t *nout)
{
	struct fs_inval *v = NULL;
	fuse_ino_t *chg = NULL, *dirs;
	struct timespec racy = *start;
	struct snap *s;
	size_t ns = 0, nchg = 0, ndirs = 0, n = 0, i;
	int r;

	*out = NULL;
	*nout = 0;
	racy.tv_sec -= 2;
	/* 1: copy every node's record (no system call under the mutex) */
	fs_table_lock(t);
	s = malloc((t->count + 1) * sizeof(*s));
	if (!s) {
		fs_table_unlock(t);
		return -ENOMEM;
	}
	for (i = 0; i < t->nbuckets; i++) {
		struct fs_node *x;

		for (x = t->buckets[i]; x; x = x->hnext) {
			if (x->sb == sb && real_kind(x->kind))
				snap_node(t, &s[ns++], x);
		}
	}
	if (t->root && t->root->sb == sb && t->root->kind == FS_SANDBOX)
		snap_node(t, &s[ns++], t->root);
	fs_table_unlock(t);

	/* 2: fstat each descriptor, unlocked */
	for (i = 0; i < ns; i++) {
		s[i].changed = snap_changed(&s[i], &racy);
		nchg += s[i].changed;
		ndirs += s[i].changed && s[i].dir;
	}
	if (nchg == 0) {
		free(s);
		return 0;
	}
	chg = malloc((nchg + ndirs) * sizeof(*chg));
	if (!chg) {
		free(s);
		return -ENOMEM;
	}
	dirs = chg + nchg;
	nchg = ndirs = 0;
	for (i = 0; i < ns; i++) {
		if (!s[i].changed)
			continue;
		chg[nchg++] = s[i].ino;
		if (s[i].dir)
			dirs[ndirs++] = s[i].ino;
	}
	free(s);
	qsort(chg, nchg, sizeof(*chg), ino_cmp);
	qsort(dirs, ndirs, sizeof(*dirs), ino_cmp);

	/* 3: what is still there of it, with names */
	fs_table_lock(t);
	r = collect_marked_locked(t, sb, chg, nchg, dirs, ndirs, &v, &n);
	fs_table_unlock(t);
	free(chg);
	if (r < 0) {
		fs_inval_free(v, n);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}

ino_t fs_virtual_ino(const struct fs_sandbox *sb, enum fs_kind kind,
		     enum fs_ctl ctl)
{
	uint64_t serial = sb ? sb->serial : 0;
	uint64_t v = 0x7ff0000000000000ull | (serial << 8);

	if (kind == FS_CTL)
		v |= (uint64_t)ctl + 2;
	else if (kind == FS_NOXDIR)
		v |= 1;
	return (ino_t)v;
}
