/*
 * fuzz_tar.c - secure extraction of arbitrary archives.
 *
 * Each input is written to a file and extracted into a fresh directory
 * inside a sandbox directory that also holds an "outside" directory.  The
 * invariant: whatever the input, nothing appears in "outside" and nothing
 * is created beside dest; the extraction returns 0 or a negative errno.
 * The same input then goes through the streaming reader of one file
 * (nox_tar_read_file, a v1 download unpacked as it arrives): it returns
 * 0 or a negative errno, and on success every piece it handed over lies
 * within [0, size) of the size it reports.  Last, the entry-by-entry
 * reader (nox_tar_read_each, the bulk fetch's): every name it offers is
 * relative without "..", every piece of a taken entry lies within its
 * size, and each taken entry gets exactly one end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nox/tar.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char top[64];

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* The furthest end of a piece nox_tar_read_file handed over. */
static int64_t read_end;

static int read_cb(const void *p, size_t n, int64_t off, void *ud)
{
	(void)p;
	(void)ud;
	if (off < 0)
		abort();
	if (off + (int64_t)n > read_end)
		read_end = off + (int64_t)n;
	return 0;
}

/* nox_tar_read_each's state: the entry taken and not yet ended. */
static int64_t each_size = -1;

static int each_file(const struct nox_tar_file *f, void *ud)
{
	const char *p = f->name;

	(void)ud;
	if (each_size >= 0 || p[0] == '/' || !p[0] || f->size < 0)
		abort();
	for (; *p; p++)
		if ((p == f->name || p[-1] == '/') && p[0] == '.' &&
		    (p[1] == '/' || !p[1] || (p[1] == '.' && (p[2] == '/' ||
							   !p[2]))))
			abort();
	each_size = f->size;
	return 1;
}

static int each_data(const void *p, size_t n, int64_t off, void *ud)
{
	(void)p;
	(void)ud;
	if (each_size < 0 || off < 0 || off + (int64_t)n > each_size)
		abort();
	return 0;
}

static int each_end(const struct nox_tar_file *f, int r, void *ud)
{
	(void)f;
	(void)ud;
	if (each_size < 0 || r > 0)
		abort();
	each_size = -1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct nox_tar_each ops = {
	    .file = each_file, .data = each_data, .end = each_end};
	int64_t fsize = 0, fmtime = 0;
	struct nox_tar_limits lim = { .max_bytes = 4u << 20,
				      .max_entries = 1000 };
	char dest[128], outside[128], in[128];
	int fd, dfd, r;

	if (!top[0]) {
		snprintf(top, sizeof(top), "/tmp/fuzz-tar.XXXXXX");
		if (!mkdtemp(top))
			abort();
	}
	snprintf(dest, sizeof(dest), "%s/a/dest", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	snprintf(in, sizeof(in), "%s/in.tar", top);
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (mkdir(top, 0700) && errno != EEXIST)
		abort();
	snprintf(dest, sizeof(dest), "%s/a", top);
	mkdir(dest, 0700);
	snprintf(dest, sizeof(dest), "%s/a/dest", top);
	mkdir(dest, 0700);
	mkdir(outside, 0700);
	fd = open(in, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	lseek(fd, 0, SEEK_SET);
	dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		abort();
	r = nox_tar_extract(fd, dfd, &lim, NULL);
	if (r > 0)
		abort();
	lseek(fd, 0, SEEK_SET);
	read_end = 0;
	r = nox_tar_read_file(fd, "f", read_cb, NULL, &fsize, &fmtime, NULL);
	if (r > 0 || (r == 0 && (fsize < 0 || read_end > fsize)))
		abort();
	lseek(fd, 0, SEEK_SET);
	each_size = -1;
	r = nox_tar_read_each(fd, &lim, &ops, NULL, NULL);
	if (r > 0 || each_size >= 0)
		abort();
	close(dfd);
	close(fd);
	/* outside stays empty; top holds only a, outside, in.tar; a only dest */
	if (count_entries(outside) != 0 || count_entries(top) != 3)
		abort();
	snprintf(dest, sizeof(dest), "%s/a", top);
	if (count_entries(dest) != 1)
		abort();
	return 0;
}
