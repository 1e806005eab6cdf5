/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace: the minimal kernel types the BPF programs read.
 *
 * Hand-written, CO-RE relocatable: only the structs and fields the programs
 * (bdt.bpf.c and its *.bpf.h pieces) touch, each with
 * preserve_access_index, so libbpf resolves every field against the running
 * kernel's BTF at load time. Field order and the other members do not
 * matter. Never replace this with a generated vmlinux.h.
 *
 * Types named foo___suffix are "flavors": older layouts of struct foo that
 * the programs probe with bpf_core_field_exists() before reading
 * (kernel_shims.bpf.h).
 */
#ifndef BDT_KERNEL_TYPES_H
#define BDT_KERNEL_TYPES_H

#include <linux/types.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
#define true 1
#define false 0
typedef __u32 dev_t;
typedef long long loff_t;
typedef unsigned long size_t;
typedef long ssize_t;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct super_block {
	dev_t s_dev;
	unsigned long s_magic;
	void *s_fs_info;
};

struct inode {
	struct super_block *i_sb;
	unsigned long i_ino;
	loff_t i_size;
};

struct file {
	struct inode *f_inode;
	unsigned int f_flags;
	loff_t f_pos;
};

struct kiocb {
	struct file *ki_filp;
	loff_t ki_pos;
	void (*ki_complete)(struct kiocb *, long);
};

struct iovec {
	void *iov_base;
	size_t iov_len;
};

/* iov_iter on 6.4+: iter_type, data_source, __iov/ubuf, count */
struct iov_iter {
	u8 iter_type;
	bool data_source;
	size_t count;
	const struct iovec *__iov;
	void *ubuf;
};

/* iov_iter 5.14 .. 6.3: the iovec pointer was called iov */
struct iov_iter___iov {
	const struct iovec *iov;
};

/* iov_iter before 5.14: direction in bit 0 of type */
struct iov_iter___old {
	unsigned int type;
};

enum iter_type {
	ITER_UBUF = 0,
	ITER_IOVEC = 1,
};

struct btrfs_fs_devices {
	u8 fsid[16];
};

struct btrfs_fs_info {
	struct btrfs_fs_devices *fs_devices;
	struct super_block *sb;
	u32 sectorsize;
};

struct btrfs_key {
	u64 objectid;
	u8 type;
	u64 offset;
} __attribute__((packed));

struct btrfs_root {
	struct btrfs_key root_key;
	struct btrfs_fs_info *fs_info;
	dev_t anon_dev;
};

struct rb_node {
	unsigned long __rb_parent_color;
};

struct rb_root {
	struct rb_node *rb_node;
};

struct rb_root_cached {
	struct rb_root rb_root;
};

/* 6.9+: a plain rb_root */
struct extent_map_tree {
	struct rb_root root;
};

/* before 6.9: an rb_root_cached called map */
struct extent_map_tree___cached {
	struct rb_root_cached map;
};

struct btrfs_inode {
	struct btrfs_root *root;
	struct extent_map_tree extent_tree;
	u32 flags; /* u64 before 6.2: bit 0 (NODATASUM) reads the same */
	struct inode vfs_inode;
};

/* extent_map on 6.11+: disk_bytenr/offset replace block_start */
struct extent_map {
	struct rb_node rb_node;
	u64 start;
	u64 len;
	u64 disk_bytenr;
	u64 offset;
	u32 flags;
};

struct extent_map___old {
	u64 block_start;
	unsigned long flags;
};

/* ->inode is a struct inode * before 6.3 and a struct btrfs_inode * since:
 * the loader tells the programs which (rodata oe_inode_is_btrfs). */
struct btrfs_ordered_extent {
	void *inode;
	u64 file_offset;
	u64 num_bytes;
	u64 disk_bytenr;
	u64 bytes_left;
	unsigned long flags;
};

/* before 5.11 (approx.) the ordered extent had start/len */
struct btrfs_ordered_extent___old {
	u64 start;
	u64 len;
};

struct btrfs_block_group {
	struct btrfs_fs_info *fs_info;
	u64 start;
	u64 length;
	u64 flags;
};

struct extent_buffer {
	u64 start;
	unsigned long bflags;
	struct btrfs_fs_info *fs_info;
	struct { int counter; } refs; /* atomic_t */
};

/* The kiocb and error of a DIO request at iomap_dio_complete() (freed there). */
struct iomap_dio {
	struct kiocb *iocb;
	int error;
};

/* btrfs_bio: file_offset and mirror_num since 6.0; ->inode since 6.3. */
struct btrfs_bio {
	struct btrfs_inode *inode;
	u64 file_offset;
	unsigned int mirror_num;
};

struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
	unsigned long vm_flags;
	unsigned long vm_pgoff;
	struct file *vm_file;
};

/* mm_lock_seq (with per-VMA locks): a seqcount_t (6.13+), odd while
 * mmap_lock is held for writing, or an int (6.4-6.12) moved when it is
 * released; absent before 6.4 */
struct mm_struct {
	struct {
		unsigned int sequence;
	} mm_lock_seq;
};

struct mm_struct___int {
	int mm_lock_seq;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct task_struct {
	unsigned int flags; /* PF_* */
	struct files_struct *files;
	struct mm_struct *mm;
	struct task_struct *group_leader;
	char comm[16];
	void *bpf_storage; /* struct bpf_local_storage __rcu *, 5.11+: NULL until a BPF program makes one */
};

/* x86_64: kprobe arguments 1-5 in di, si, dx, cx, r8; return value in ax */
struct pt_regs {
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long r10;
	unsigned long r9;
	unsigned long orig_ax;
};

/* io_uring (dio_fallback on the tracepoint backend): a request, its opcode,
 * fd, flags (u32 before 6.10, u64 since: only bit 0 is read) and the command
 * area whose first member is the read/write request's kiocb (struct io_rw) */
struct io_cqe {
	__u64 user_data;
	__s32 res;
	__s32 fd;
};

struct io_cmd_data {
	struct file *file;
};

struct io_kiocb {
	struct file *file;
	u8 opcode;
	u32 flags;
	struct io_cqe cqe;
	struct io_cmd_data cmd;
};

struct io_uring_cqe {
	__u64 user_data;
	__s32 res;
};

enum io_uring_op {
	IORING_OP_WRITEV = 2,
	IORING_OP_WRITE_FIXED = 5,
	IORING_OP_WRITE = 23,
	IORING_OP_WRITEV_FIXED = 61,
};

#pragma clang attribute pop

#endif /* BDT_KERNEL_TYPES_H */
