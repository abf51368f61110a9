/*
 * fuzz_v1.c - the v1 JSON parsers on arbitrary bytes.
 *
 * Invariants: no crash, no leak; an accepted exec request has a non-empty
 * argv; re-encoding an accepted request or result and parsing it again
 * succeeds (encode/parse round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nox/v1.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *js = (const char *)data;
	struct nox_v1_exec_req req;
	struct nox_exec_result res;
	struct nox_create_opts co;
	struct nox_sandbox_info info;
	char *store = NULL, *enc;
	char text[256];

	memset(&req, 0, sizeof(req));
	if (nox_v1_exec_req_parse(js, size, &req, NULL) == 0) {
		struct nox_v1_exec_req again;

		if (!req.req.argv || !req.req.argv[0])
			abort();
		enc = nox_v1_exec_req_encode(&req.req);
		if (!enc)
			abort();
		memset(&again, 0, sizeof(again));
		if (nox_v1_exec_req_parse(enc, strlen(enc), &again, NULL) != 0)
			abort();
		nox_v1_exec_req_cleanup(&again);
		free(enc);
		nox_v1_exec_req_cleanup(&req);
	}
	memset(&res, 0, sizeof(res));
	if (nox_v1_exec_result_parse(js, size, &res, NULL) == 0) {
		struct nox_exec_result again;

		enc = nox_v1_exec_result_encode(&res);
		if (!enc)
			abort();
		memset(&again, 0, sizeof(again));
		if (nox_v1_exec_result_parse(enc, strlen(enc), &again, NULL) != 0)
			abort();
		/* nox.bytes: every byte survives, UTF-8 or not */
		if (again.out_len != res.out_len ||
		    memcmp(again.out, res.out, res.out_len) != 0 ||
		    again.err_len != res.err_len ||
		    memcmp(again.err, res.err, res.err_len) != 0)
			abort();
		nox_exec_result_cleanup(&again);
		free(enc);
	}
	nox_exec_result_cleanup(&res);
	if (nox_v1_create_req_parse(js, size, &co, &store, NULL) == 0)
		free(store);
	nox_v1_create_resp_parse(js, size, &info, NULL);
	nox_v1_error_text(js, size, text, sizeof(text));
	if (strlen(text) >= sizeof(text))
		abort();
	return 0;
}
