/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The few kernel structures monitor.bpf.c reads, declared with only the fields it touches. With
 * preserve_access_index, clang records each access by name and libbpf relocates it against the running kernel's
 * BTF at load time (CO-RE), so field offsets are never baked in. Rejected: a generated vmlinux.h (3 MB, tied to
 * the build host's kernel, and a build output we would have to commit or regenerate with bpftool). */
#ifndef RAMPART_KERNEL_H
#define RAMPART_KERNEL_H

#define TMPFS_MAGIC 0x01021994
#define RAMFS_MAGIC 0x858458f6
#define S_IWOTH 00002

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct super_block {
	unsigned long s_magic;
	unsigned int s_dev;
};

struct vfsmount {
	struct super_block *mnt_sb;
};

struct inode {
	unsigned short i_mode;
	unsigned long i_ino;
	unsigned int __i_nlink;
};

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct inode *d_inode;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	struct path f_path;
};

struct linux_binprm {
	struct file *file;
	const char *filename;
};

struct task_struct {
	int pid;
};

#pragma clang attribute pop

#endif
