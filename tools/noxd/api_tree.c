/*
 * api_tree.c - paged GET fs/tree (docs/protocol.md, nox.fs): a request
 * with "limit" or "after" gets at most limit entries (capped by
 * --tree-page) of the walk that starts after the cursor, and "next" when
 * the page is full.
 *
 * The walk order is fsw_path_cmp's: parents before children, siblings
 * sorted by bytes.  A page is made without the rest of the tree: each
 * directory on the cursor's path is listed again, and of its entries after
 * the cursor only the limit smallest are kept (a bounded max-heap), so
 * memory is O(limit x depth) whatever the tree's size.  A flat directory
 * of N entries is therefore listed N / limit times.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "fsw_i.h"
#include "noxd.h"

#define TREE_DEPTH 256

struct tp_ent {
	char *name;
	struct stat st;
};

/* The entries of one directory after the cursor: the k smallest names. */
struct tp_sel {
	struct tp_ent *v; /* a max-heap by name while listing */
	size_t n, k;
	const char *after; /* cursor component (NULL: none) */
	bool resume;	       /* the cursor component is here */
	struct stat resume_st; /* and its stat */
};

struct tp_walk {
	struct noxd_req *r;
	json_object *arr;
	size_t left;	     /* entries the page may still take */
	char last[PATH_MAX]; /* the last path emitted */
	struct nox_err err;
};

static int tp_cmp_name(const struct tp_ent *a, const struct tp_ent *b)
{
	return strcmp(a->name, b->name);
}

static void tp_sift_down(struct tp_sel *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct tp_ent t;

		if (l < s->n && tp_cmp_name(&s->v[l], &s->v[m]) > 0)
			m = l;
		if (l + 1 < s->n && tp_cmp_name(&s->v[l + 1], &s->v[m]) > 0)
			m = l + 1;
		if (m == i)
			return;
		t = s->v[i];
		s->v[i] = s->v[m];
		s->v[m] = t;
		i = m;
	}
}

static void tp_sift_up(struct tp_sel *s, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		struct tp_ent t;

		if (tp_cmp_name(&s->v[p], &s->v[i]) >= 0)
			return;
		t = s->v[i];
		s->v[i] = s->v[p];
		s->v[p] = t;
		i = p;
	}
}

static int tp_list_cb(const char *name, const struct stat *st, void *ud)
{
	struct tp_sel *s = ud;
	int c = 0;

	if (s->after) {
		c = strcmp(name, s->after);
		if (c < 0)
			return 0;
		if (c == 0) {
			s->resume = true;
			s->resume_st = *st;
			return 0;
		}
	}
	if (s->n == s->k) {
		char *nm;

		if (!s->k || strcmp(name, s->v[0].name) >= 0)
			return 0;
		nm = strdup(name);
		if (!nm)
			return -ENOMEM;
		free(s->v[0].name);
		s->v[0].name = nm;
		s->v[0].st = *st;
		tp_sift_down(s, 0);
		return 0;
	}
	s->v[s->n].name = strdup(name);
	if (!s->v[s->n].name)
		return -ENOMEM;
	s->v[s->n].st = *st;
	tp_sift_up(s, s->n++);
	return 0;
}

static int tp_cmp_ent(const void *a, const void *b)
{
	return tp_cmp_name(a, b);
}

static int tp_join(char *out, size_t outsz, const char *dir, const char *name)
{
	int n = *dir ? snprintf(out, outsz, "%s/%s", dir, name)
		     : snprintf(out, outsz, "%s", name);

	return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

/* Adds entry rel (workspace path full) to the page. */
static int tp_emit(struct tp_walk *w, const char *full, const char *rel,
		   const struct stat *st)
{
	char target[PATH_MAX];
	const char *tgt = NULL;
	json_object *o;

	if (S_ISLNK(st->st_mode) &&
	    nox_backend_readlink(w->r->d->backend, w->r->id, full, target,
				 sizeof(target), NULL) >= 0)
		tgt = target;
	o = fsw_stat_build(st, tgt);
	if (!o || fsw_add_name(o, "path", rel) < 0 ||
	    json_object_array_add(w->arr, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	snprintf(w->last, sizeof(w->last), "%s", rel);
	w->left--;
	return 0;
}

/*
 * Walks directory dir (rel below the tree root) from after on (a path
 * relative to rel, NULL for all of it) until the page is full.
 */
static int tp_walk_dir(struct tp_walk *w, const char *dir, const char *rel,
		       const char *after, int depth)
{
	char full[PATH_MAX], crel[PATH_MAX], comp[NAME_MAX + 1];
	const char *rest = NULL;
	struct tp_sel s = {0};
	size_t i;
	int rc;

	if (depth > TREE_DEPTH)
		return nox_err_set(&w->err, ELOOP, "tree deeper than %d",
				   TREE_DEPTH);
	if (after) {
		const char *sl = strchr(after, '/');
		size_t cl = sl ? (size_t)(sl - after) : strlen(after);

		if (cl > NAME_MAX)
			return nox_err_set(&w->err, EINVAL, "bad 'after'");
		memcpy(comp, after, cl);
		comp[cl] = '\0';
		s.after = comp;
		rest = sl ? sl + 1 : NULL;
	}
	s.k = w->left;
	s.v = calloc(s.k ? s.k : 1, sizeof(*s.v));
	if (!s.v)
		return nox_err_set(&w->err, ENOMEM, "out of memory");
	rc = nox_backend_list(w->r->d->backend, w->r->id, dir, tp_list_cb, &s,
			      &w->err);
	if (rc < 0 && !w->err.code)
		nox_err_set(&w->err, -rc, "listing '%s'", dir);
	qsort(s.v, s.n, sizeof(*s.v), tp_cmp_ent);
	/* the cursor's own entry was sent: what is below it comes next */
	if (rc >= 0 && s.resume && S_ISDIR(s.resume_st.st_mode)) {
		rc = tp_join(full, sizeof(full), dir, comp);
		if (rc >= 0)
			rc = tp_join(crel, sizeof(crel), rel, comp);
		if (rc < 0)
			nox_err_set(&w->err, -rc, "path too long");
		else
			rc = tp_walk_dir(w, full, crel, rest, depth + 1);
	}
	for (i = 0; i < s.n && rc >= 0 && w->left; i++) {
		rc = tp_join(full, sizeof(full), dir, s.v[i].name);
		if (rc >= 0)
			rc = tp_join(crel, sizeof(crel), rel, s.v[i].name);
		if (rc < 0) {
			nox_err_set(&w->err, -rc, "path too long");
			break;
		}
		rc = tp_emit(w, full, crel, &s.v[i].st);
		if (rc < 0)
			nox_err_set(&w->err, -rc, "out of memory");
		else if (w->left && S_ISDIR(s.v[i].st.st_mode))
			rc = tp_walk_dir(w, full, crel, NULL, depth + 1);
	}
	for (i = 0; i < s.n; i++)
		free(s.v[i].name);
	free(s.v);
	return rc < 0 ? rc : 0;
}

int api_fs_tree_page(struct noxd_req *r, const char *path)
{
	const char *after = server_query(r, "after");
	const char *lim = server_query(r, "limit");
	size_t cap = r->d->opts.tree_page;
	struct tp_walk w = {.r = r};
	unsigned long long v = cap;
	struct statvfs sv;
	json_object *o;
	char *end;
	int rc;

	if (lim) {
		errno = 0;
		v = strtoull(lim, &end, 10);
		if (errno || end == lim || *end || v == 0 || *lim == '-')
			return server_reply_errno(r, EINVAL, "bad 'limit'");
	}
	if (after &&
	    (!*after || strcmp(after, ".") == 0 ||
	     nox_path_validate(after, NULL) < 0 || strlen(after) >= PATH_MAX))
		return server_reply_errno(r, EINVAL, "bad 'after'");
	w.left = v < cap ? (size_t)v : cap;
	w.arr = json_object_new_array();
	if (!w.arr)
		return server_reply_json(r, MHD_HTTP_OK, NULL);
	nox_err_clear(&w.err);
	rc = tp_walk_dir(&w, path, "", after, 0);
	if (rc < 0) {
		json_object_put(w.arr);
		return server_reply_errno(r, rc, nox_err_str(&w.err, -rc));
	}
	o = fsw_entries_build(w.arr);
	if (o && !w.left && fsw_add_name(o, "next", w.last) < 0) {
		json_object_put(o);
		o = NULL;
	}
	/* the space figures ride along on the last page */
	if (o && w.left &&
	    nox_backend_statfs(r->d->backend, r->id, &sv, NULL) == 0) {
		json_object *so = fsw_statfs_build(&sv);

		if (so && json_object_object_add(o, "statfs", so) < 0)
			json_object_put(so);
	}
	return server_reply_json(r, MHD_HTTP_OK, server_json_take(o));
}
