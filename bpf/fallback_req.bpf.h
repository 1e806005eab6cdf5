/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: what fallback.bpf.h keeps of a pending O_DIRECT write
 * (struct fb_req) and of a thread's pending write (struct fb_task). Apart
 * from fallback.bpf.h because a thread's is kept in its task storage with its
 * current request (struct cur_req, lazy.bpf.h): iomap_dio_rw_begin finds both
 * with one lookup.
 */
#ifndef BDT_FALLBACK_REQ_BPF_H
#define BDT_FALLBACK_REQ_BPF_H

/* A pending O_DIRECT write. */
struct fb_req {
	struct ident id;
	u64 pos;
	u64 count;     /* requested */
	u32 pid;
	u32 tid;
	char comm[BDT_COMM_LEN];
	s32 fd;
	u32 via;       /* enum bdt_fallback_via */
	u32 flags;     /* BDT_F_NODATASUM | BDT_F_UNALIGNED */
	u32 seen;      /* iomap_dio_rw_begin was reached for it */
	u32 file_later; /* io_uring: the file is read at completion */
	u32 pad;
};

/* This thread's pending write: a write-family syscall or the function hook.
 * FB_T_FULL: r is filled. FB_T_FILE (a syscall without task filters): r
 * holds the position, size, fd and way only, `file` and `buf` the rest; the
 * file part and the task part are read at the syscall's exit, and only when
 * the write fell back (wrote bytes without r.seen). At the exit the syscall
 * has put its file: when another thread closed the fd meanwhile the file
 * may be gone (read through bpf_probe_read_kernel: a wrong identity, never a
 * fault). With task filters the file part is read at entry, as the filter
 * needs touch_inode() before the fallback's writeback. A new task-storage
 * entry is all zeros: FB_T_NONE. */
enum { FB_T_NONE, FB_T_FULL, FB_T_FILE };

/* state first: in struct cur_req it follows the VMA cache, which a write's
 * begin reads anyway; fb_mark_direct reads it at every write's begin once
 * fb_used_tid is set, in threads with no pending write too (io_uring's) */
struct fb_task {
	u32 state;
	u32 pad;
	u64 file;
	u64 buf;
	struct fb_req r;
};

#endif /* BDT_FALLBACK_REQ_BPF_H */
