/*
 * fuzz_ctl.c - the .nox/exec request parser on arbitrary bytes, split at
 * an arbitrary point as two writes would be.
 *
 * Invariants: no crash or leak; a READY request has a non-empty argv; a
 * shell request is exactly sh -c TEXT with TEXT free of NUL; a request
 * that is READY before close stays READY (same argv) when parsed at
 * close; the timeout is positive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctlreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct fs_ctl_req *r)
{
	if (!r->req.argv || !r->req.argv[0] || !r->req.argv[0][0])
		abort();
	if (r->req.timeout_seconds <= 0)
		abort();
	if (!r->is_v1) {
		if (strcmp(r->req.argv[0], "sh") || strcmp(r->req.argv[1], "-c") ||
		    r->req.argv[2] != r->text || r->req.argv[3])
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct fs_ctl_req a, b;
	struct nox_err err;
	size_t cut = size ? data[0] % (size + 1) : 0;
	int r1, r2;

	/* the first cut bytes, as a first write: complete or not */
	r1 = fs_ctl_req_parse(buf, cut, false, 30, &a, &err);
	if (r1 == FS_CTL_REQ_READY) {
		check(&a);
		fs_ctl_req_cleanup(&a);
	}
	/* the whole input, before and at close */
	r1 = fs_ctl_req_parse(buf, size, false, 30, &a, &err);
	r2 = fs_ctl_req_parse(buf, size, true, 30, &b, &err);
	if (r1 == FS_CTL_REQ_READY) {
		check(&a);
		if (r2 != FS_CTL_REQ_READY)
			abort();
		check(&b);
		if (strcmp(a.req.argv[0], b.req.argv[0]) != 0)
			abort();
	}
	if (r2 == FS_CTL_REQ_READY)
		check(&b);
	if (r1 == FS_CTL_REQ_READY)
		fs_ctl_req_cleanup(&a);
	if (r2 == FS_CTL_REQ_READY)
		fs_ctl_req_cleanup(&b);
	return 0;
}
