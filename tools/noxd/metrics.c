/*
 * metrics.c - per-endpoint request counters and GET /metrics.
 *
 * Counters are lock-free atomics bumped from the connection threads:
 * requests when a request is routed (before any body byte), bytes in as
 * the body arrives, errors (status >= 400) and bytes out when the reply is
 * queued, so a client that has its answer also sees it counted.  The text
 * is the Prometheus exposition format of docs/protocol.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "noxd.h"

static const char *const metrics_labels[EP__COUNT] = {
    [EP_HEALTHZ] = "healthz",	  [EP_CREATE] = "create",
    [EP_TOUCH] = "touch",	  [EP_EXEC] = "exec",
    [EP_UPLOAD] = "upload",	  [EP_DOWNLOAD] = "download",
    [EP_DELETE] = "delete",	  [EP_EXTENSIONS] = "extensions",
    [EP_SANDBOXES] = "sandboxes", [EP_INFO] = "info",
    [EP_FS_STAT] = "fs_stat",	  [EP_FS_LIST] = "fs_list",
    [EP_FS_TREE] = "fs_tree",	  [EP_FS_READ] = "fs_read",
    [EP_FS_WRITE] = "fs_write",	  [EP_FS_OP] = "fs_op",
    [EP_FS_STATFS] = "fs_statfs", [EP_FS_FILES] = "fs_files",
    [EP_FS_OPS] = "fs_ops",
    [EP_METRICS] = "metrics",	  [EP_OTHER] = "other",
};

const char *metrics_label(enum noxd_ep ep)
{
	return ep < EP__COUNT ? metrics_labels[ep] : "other";
}

void metrics_count_request(struct noxd *d, enum noxd_ep ep)
{
	atomic_fetch_add_explicit(&d->metrics.requests[ep], 1,
				  memory_order_relaxed);
}

void metrics_count_reply(struct noxd *d, enum noxd_ep ep, int status,
			 uint64_t bytes_out)
{
	if (status >= 400)
		atomic_fetch_add_explicit(&d->metrics.errors[ep], 1,
					  memory_order_relaxed);
	atomic_fetch_add_explicit(&d->metrics.bytes_out[ep], bytes_out,
				  memory_order_relaxed);
}

void metrics_count_out(struct noxd *d, enum noxd_ep ep, uint64_t n)
{
	atomic_fetch_add_explicit(&d->metrics.bytes_out[ep], n,
				  memory_order_relaxed);
}

void metrics_count_in(struct noxd *d, enum noxd_ep ep, uint64_t n)
{
	atomic_fetch_add_explicit(&d->metrics.bytes_in[ep], n,
				  memory_order_relaxed);
}

/* Appends one metric family (all endpoints) to buf at *off. */
static void metrics_family(char *buf, size_t size, size_t *off,
			   const char *name, const char *help,
			   atomic_uint_fast64_t *v)
{
	int i, n;

	n = snprintf(buf + *off, size - *off,
		     "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	if (n > 0 && (size_t)n < size - *off)
		*off += (size_t)n;
	for (i = 0; i < EP__COUNT; i++) {
		n = snprintf(buf + *off, size - *off,
			     "%s{endpoint=\"%s\"} %llu\n", name,
			     metrics_labels[i],
			     (unsigned long long)atomic_load_explicit(
				 &v[i], memory_order_relaxed));
		if (n > 0 && (size_t)n < size - *off)
			*off += (size_t)n;
	}
}

int api_metrics(struct noxd_req *r)
{
	struct noxd_metrics *m = &r->d->metrics;
	size_t size = 16384, off = 0;
	char *buf = malloc(size);
	int rc;

	if (!buf)
		return server_reply_errno(r, ENOMEM, NULL);
	metrics_family(buf, size, &off, "noxd_requests_total",
		       "Requests received.", m->requests);
	metrics_family(buf, size, &off, "noxd_request_errors_total",
		       "Requests answered with a status of 400 or more.",
		       m->errors);
	metrics_family(buf, size, &off, "noxd_bytes_in_total",
		       "Request body bytes received.", m->bytes_in);
	metrics_family(buf, size, &off, "noxd_bytes_out_total",
		       "Response body bytes sent.", m->bytes_out);
	rc = server_reply_buf(r, MHD_HTTP_OK, "text/plain; version=0.0.4", buf,
			      off);
	free(buf);
	return rc;
}
