/*
 * ctl.h - the .nox control directory and its files.
 *
 *   exec    write a request (JSON v1 exec object, or shell text ending in
 *           '\n'); the write returns when the command has finished.  A
 *           read on the same open gives that command's v1 result JSON, a
 *           read on a fresh open the sandbox's last result.
 *   stdout, stderr, status   of the sandbox's last finished command
 *   info    {"id","podName","expiresAt","backend"}
 *   sync    a write returns once every pending upload is done
 *
 * Each open is its own transaction (fi->fh points to a struct ctl_open).
 * Served with direct_io; stat shows the size of the current content
 * (0 for info and sync, computed only when read).  Readers see a
 * snapshot taken by the read at offset 0 (or the first read), so a
 * result finishing meanwhile never mixes into one read sequence.
 */
#ifndef NOXFS_CTL_H
#define NOXFS_CTL_H

#include <sys/stat.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "inode.h"

/* Upper bound of one pending exec request. */
#define FS_CTL_REQ_MAX (1024 * 1024)

/* The control file called name, or -1. */
int fs_ctl_from_name(const char *name);
/* "exec", "stdout"...; static storage. */
const char *fs_ctl_name(enum fs_ctl c);
/* Permission bits (0666 for exec and sync, 0644 for the others). */
mode_t fs_ctl_mode(enum fs_ctl c);

struct fs_result;
/* Bytes a read of control file c would give with r as the last result. */
size_t fs_ctl_size(enum fs_ctl c, struct fs_result *r);
/* fstat of an open: an exec open that ran a request shows its size. */
void fs_ctl_fstat(struct fuse_file_info *fi, struct stat *st);

/* Open (0 or -errno); fills fi->fh and fi->direct_io. */
int fs_ctl_open(struct fs *fs, struct fs_node *n, struct fuse_file_info *fi);
/* These reply to req themselves. */
void fs_ctl_read(fuse_req_t req, struct fs *fs, struct fs_node *n, size_t size,
		 off_t off, struct fuse_file_info *fi);
void fs_ctl_write(fuse_req_t req, struct fs *fs, struct fs_node *n,
		  const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi);
/* close(): runs a pending shell request without its final newline; req
 * (NULL: none) is the FLUSH, whose interrupt stops the command. */
int fs_ctl_flush(fuse_req_t req, struct fs *fs, struct fs_node *n,
		 struct fuse_file_info *fi);
/* Frees the open's state. */
void fs_ctl_release(struct fuse_file_info *fi);

#endif
