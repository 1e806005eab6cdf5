/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: O_DIRECT writes btrfs carries out as buffered writes
 * (dio_fallback records, docs/detectors/dio-buffered-fallback.md).
 *
 * A write that entered the O_DIRECT path is kept as pending; iomap_dio_rw_begin
 * for it (dio.bpf.h calls fb_mark_direct) marks it direct; when it returns
 * having written bytes without that mark, one dio_fallback record is made. A
 * write that went direct makes no record. Where the write is seen:
 *   - function hook on btrfs_direct_write() (6.12+) or btrfs_do_write_iter()
 *     with O_DIRECT (6.1 inlines btrfs_direct_write): every submitter, by
 *     thread (its struct fb_task, kept in its task storage cur_dio);
 *   - tracepoint backend: the write-family syscalls (by thread, as the
 *     function hook), io_submit's iocbs read from user memory, at most
 *     BDT_FB_AIO of them per call
 *     (fb_aio, by thread, matched to iomap_dio_rw_begin by inode and
 *     position: the submission runs in io_submit), io_uring write requests
 *     (fb_kiocb, by the address of the request's kiocb, which is what
 *     iomap_dio_rw_begin gets, in a direct-mapped table fb_slot, else fb_kiocb;
 *     also when an io-wq worker retries the request after its nowait attempt
 *     returned EAGAIN; the file is judged at completion).
 * What a clean write (one that went direct) costs is kept small: the
 * submission keeps what the end needs to decide, the file's identity is read
 * at the end and only for a write that fell back.
 * The hooks are bpf/hooks.def's direct_w (the function), fbe_<syscall>, fbx_<syscall> (each
 * syscall's enter and exit) and uring_sub/uring_cmpl; the function hook
 * replaces the others where it attaches.
 * Cheap on every other syscall: the classic tracepoints run only for their
 * syscall; the raw sys_enter/sys_exit programs (no tracefs) compare the
 * syscall number first; the exits and iomap_dio_rw_begin look a pending write
 * up only once one was kept (fb_used_tid, fb_used_kiocb; io_submit's while
 * some are pending: fb_pending_aio).
 */
#ifndef BDT_FALLBACK_BPF_H
#define BDT_FALLBACK_BPF_H

#include <linux/aio_abi.h>

#define BDT_O_DIRECT 00040000
#define BDT_O_APPEND 00002000
#define BDT_RWF_NOWAIT 0x00000008
#define BDT_FB_AIO 8     /* iocbs followed per io_submit call */
#define BDT_FB_IOV 1024  /* iovecs summed for a vectored write (IOV_MAX) */

/* struct fb_req and struct fb_task: fallback_req.bpf.h. This thread's
 * pending write is in its task storage (cur_dio, lazy.bpf.h), with its
 * current request: iomap_dio_rw_begin looks the thread up once for both. */
static __always_inline struct fb_task *fb_task_get(bool create)
{
	struct cur_req *c = cur_req_get(create);

	return c ? &c->fb : 0;
}

/* io_uring write requests by the number of their kiocb (addr_num): first in a
 * direct-mapped table (fb_slot_key/fb_slot), else in fb_kiocb. A slot is
 * claimed by a compare-and-swap of its key from 0 (or from the same kiocb:
 * an older request of it that never completed) to the kiocb, and freed with
 * a plain store of 0 by its completion. Unlike dio_slot no "being filled"
 * state: nothing walks the table, and the only lookups of a kiocb (its
 * iomap_dio_rw_begin, its completion) come after its submission. A write
 * kept in a slot that reached iomap_dio_rw_begin is marked in its key
 * (kiocb | BDT_FB_SEEN; kiocbs are 8-byte aligned), not in its entry: a
 * write that went direct has its entry written by its submission only, and
 * its completion reads the key alone. The other writers of a key are the
 * same request's hooks, one after the other; other kiocbs' submissions
 * compare-and-swap it from 0 only, their completions write it only when it
 * is theirs: so the mark and the free are plain stores. */
#define BDT_FB_SLOT_BITS 12
#define BDT_FB_SEEN 1ull
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1u << BDT_FB_SLOT_BITS);
	__type(key, u32);
	__type(value, u64);
} fb_slot_key SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1u << BDT_FB_SLOT_BITS);
	__type(key, u32);
	__type(value, struct fb_req);
} fb_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, struct fb_req);
} fb_kiocb SEC(".maps");

/* Entries put in fb_kiocb less those deleted (an LRU eviction is not counted
 * back): no lookup while it holds none. */
volatile __u64 fb_kiocb_n = 0;

static __always_inline u32 fb_slot_of(u64 kiocb)
{
	return (u32)((kiocb * 0x9E3779B97F4A7C15ull) >> (64 - BDT_FB_SLOT_BITS));
}

struct fb_aio {
	struct fb_req r[BDT_FB_AIO];
	u32 n;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, struct fb_aio);
} fb_aio SEC(".maps");

/* All zeros, never written: the initial value of an fb_aio entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct fb_aio);
} fb_aio_zero SEC(".maps");

/* Set once a thread's (struct fb_task) or an io_uring request's (fb_slot, fb_kiocb)
 * write was first kept, never cleared: the lookups are skipped until then
 * (no O_DIRECT writes on btrfs yet, or none since the tracer started). Not
 * counts of the writes pending: an increment and a decrement of a counter
 * every CPU writes cost each write more than the lookups they spare, and
 * under load the count is rarely 0. */
volatile __u32 fb_used_tid = 0;
volatile __u32 fb_used_kiocb = 0;
/* How many entries fb_aio holds (approximately: an LRU eviction is not
 * counted back), so its lookups are skipped while none is pending. */
volatile __u64 fb_pending_aio = 0;
/* 1 while every hook is attached: set by userspace once all are, cleared before
 * it detaches any (live::Session). Hooks attach and detach one at a time, so
 * around the attach and the detach a write's syscall hooks can run while
 * iomap_dio_rw_begin's cannot mark it direct: every such write would look like
 * a fallback. A write is followed only if it starts armed and makes a record
 * only if it also ends armed. */
volatile __u32 fb_armed = 0;

/* f is an O_DIRECT file on btrfs the filesystem filter lets through: its inode. */
static __always_inline struct inode *fb_file_inode(struct file *f)
{
	struct inode *inode;
	struct super_block *sb;

	if (!f || !(BPF_CORE_READ(f, f_flags) & BDT_O_DIRECT))
		return 0;
	inode = BPF_CORE_READ(f, f_inode);
	sb = BPF_CORE_READ(inode, i_sb);
	if (!is_btrfs_sb(sb, false) || !fs_pass(BPF_CORE_READ(sb, s_dev)))
		return 0;
	return inode;
}

/* The file part of r: identity, position, size, nodatasum, alignment. */
static __always_inline void fb_req_file(struct fb_req *r, struct inode *inode, u64 pos, u64 count,
					u64 buf)
{
	struct btrfs_inode *bi = btrfs_i(inode);
	u64 mask;

	btrfs_ident(&r->id, bi);
	touch_inode(&r->id);
	r->pos = pos;
	r->count = count;
	if (BPF_CORE_READ(bi, flags) & BDT_INODE_NODATASUM)
		r->flags |= BDT_F_NODATASUM;
	/* btrfs' check_direct_IO(): position and buffer aligned to the sector size */
	mask = BPF_CORE_READ(bi, root, fs_info, sectorsize) - 1;
	if ((pos | count | buf) & mask)
		r->flags |= BDT_F_UNALIGNED;
}

/* The submitter part of r: this task (btf: a tp_btf program's, task_comm). */
static __always_inline void fb_req_task_btf(struct fb_req *r, s32 fd, u32 via, bool btf)
{
	u64 t = bpf_get_current_pid_tgid();

	r->fd = fd;
	r->via = via;
	r->pid = t >> 32;
	r->tid = (u32)t;
	task_comm(r->comm, btf);
}

static __always_inline void fb_req_task(struct fb_req *r, s32 fd, u32 via)
{
	fb_req_task_btf(r, fd, via, false);
}

/* Fills r for a write to f; false when f is not an O_DIRECT file on btrfs or
 * the filters drop it. */
static __always_inline bool fb_req_init(struct fb_req *r, struct file *f, u64 pos, u64 count,
					u64 buf, s32 fd, u32 via)
{
	struct inode *inode;

	if (!fb_armed)
		return false;
	inode = fb_file_inode(f);
	if (!inode || !task_pass())
		return false;
	fb_req_file(r, inode, pos, count, buf);
	fb_req_task(r, fd, via);
	return true;
}

static __always_inline void fb_emit(const struct fb_req *r, u64 count, bool requested, u8 src)
{
	struct bdt_raw_event *e;

	if (!fb_armed) /* the detach has begun: iomap_dio_rw_begin may be gone */
		return;
	e = reserve_src(BDT_EV_DIO_FALLBACK, src);
	if (!e)
		return;
	e->pid = r->pid;
	e->tid = r->tid;
	__builtin_memcpy(e->comm, r->comm, BDT_COMM_LEN);
	put_ident(e, &r->id);
	e->flags |= r->flags | (requested ? BDT_F_REQUESTED : 0);
	e->u.fb.pos = r->pos;
	e->u.fb.count = count;
	e->u.fb.fd = r->fd;
	e->u.fb.via = r->via;
	bdt_submit(e);
}

/* iomap_dio_rw_begin: this thread's (or this kiocb's) pending write went
 * direct (c: this thread's task storage, NULL when it has none; kiocb: its
 * number, addr_num). */
static __always_inline void fb_mark_direct(struct cur_req *c, u64 kiocb, u64 ino, u64 pos)
{
	u32 tid;

	if (fb_used_tid && c && c->fb.state != FB_T_NONE)
		c->fb.r.seen = 1;
	if (fb_used_kiocb) {
		u32 i = fb_slot_of(kiocb);
		u64 *sk = bpf_map_lookup_elem(&fb_slot_key, &i);

		if (sk && kiocb && (*sk & ~BDT_FB_SEEN) == kiocb) { /* kept in its slot: marked in the key */
			if (*sk != (kiocb | BDT_FB_SEEN))
				*(volatile u64 *)sk = kiocb | BDT_FB_SEEN;
		} else if (fb_kiocb_n) {
			struct fb_req *r = bpf_map_lookup_elem(&fb_kiocb, &kiocb);

			if (r)
				r->seen = 1;
		}
	}
	if (fb_pending_aio) {
		struct fb_aio *a;

		tid = cur_tid();
		a = bpf_map_lookup_elem(&fb_aio, &tid);
		if (!a)
			return;
#pragma unroll
		for (int i = 0; i < BDT_FB_AIO; i++)
			if (i < a->n && a->r[i].id.ino == ino && a->r[i].pos == pos)
				a->r[i].seen = 1;
	}
}

/* The write this thread kept returned: a fallback if it wrote bytes without
 * reaching iomap_dio_rw. */
static __always_inline void fb_task_done(s64 ret, u8 src)
{
	struct fb_task *t;

	if (!fb_used_tid)
		return;
	t = fb_task_get(false);
	if (!t || t->state == FB_T_NONE)
		return;
	if (!t->r.seen && ret > 0) {
		bool ok = true;

		if (t->state == FB_T_FILE) {
			struct inode *inode = fb_file_inode((struct file *)t->file);

			ok = inode != 0;
			if (ok) {
				fb_req_file(&t->r, inode, t->r.pos, t->r.count, t->buf);
				fb_req_task(&t->r, t->r.fd, t->r.via);
			}
		}
		if (ok)
			fb_emit(&t->r, (u64)ret, false, src);
	}
	t->state = FB_T_NONE;
}

/* This thread's write is pending (state FB_T_FULL: r filled; FB_T_FILE: r's
 * pos, count, fd, via, and the file and buffer). */
static __always_inline void fb_task_start(const struct fb_req *r, u32 state, u64 file, u64 buf)
{
	struct fb_task *t = fb_task_get(true);

	if (!t)
		return;
	__builtin_memcpy(&t->r, r, sizeof(*r));
	t->file = file;
	t->buf = buf;
	t->state = state;
	if (!fb_used_tid)
		fb_used_tid = 1;
}

/* ---- function hook: btrfs_direct_write(iocb, from) / btrfs_do_write_iter(iocb, from, encoded) */
static __always_inline int fb_fn_enter(void *ctx, u64 *a, u8 src)
{
	struct kiocb *iocb = (void *)a[0];
	struct iov_iter *from = (void *)a[1];
	struct fb_req r = {};

	if (!iocb || !from)
		return 0;
	if (fb_fn_layout == 1 && a[2]) /* an encoded write (ioctl), not O_DIRECT */
		return 0;
	if (!fb_req_init(&r, BPF_CORE_READ(iocb, ki_filp), BPF_CORE_READ(iocb, ki_pos),
			 BPF_CORE_READ(from, count), iter_user_addr(from, false), -1, BDT_FB_CALL))
		return 0;
	fb_task_start(&r, FB_T_FULL, 0, 0);
	return 0;
}

static __always_inline int fb_fn_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	fb_task_done(ret, src);
	return 0;
}

/* ---- the write-family syscalls and io_submit (tracepoint backend) ---------------- */
/* fd's file in this task's fd table: direct loads through the task's BTF
 * pointer, then one read of the table's entry. */
static __always_inline struct file *fb_fd_file(u64 fd)
{
	struct files_struct *files = bpf_get_current_task_btf()->files;
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = 0;

	if (!files)
		return 0;
	fdt = files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return 0;
	fds = fdt->fd;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* Bytes of a user iovec array (up to BDT_FB_IOV entries), 8 entries per
 * bpf_loop step: the verifier checks the step once. */
struct fb_iov_sum {
	u64 uvec;
	u64 vlen;
	u64 bytes;
	u64 first_base;
};

static long fb_iov_step(u32 i, void *data)
{
	struct fb_iov_sum *c = data;
	struct iovec v[8];
	u64 at = (u64)i * 8;

	if (at >= c->vlen || at >= BDT_FB_IOV)
		return 1;
	__builtin_memset(v, 0, sizeof(v));
	if (bpf_probe_read_user(v, sizeof(v), (void *)(c->uvec + at * sizeof(v[0])))) {
		/* the array may end before a page the 8-entry read crosses */
#pragma unroll
		for (int k = 0; k < 8; k++)
			if (at + k < c->vlen)
				bpf_probe_read_user(&v[k], sizeof(v[k]),
						    (void *)(c->uvec + (at + k) * sizeof(v[k])));
	}
	if (i == 0)
		c->first_base = (u64)v[0].iov_base;
#pragma unroll
	for (int k = 0; k < 8; k++)
		if (at + k < c->vlen)
			c->bytes += v[k].iov_len;
	return 0;
}

static __always_inline u64 fb_iov_bytes(u64 uvec, u64 vlen, u64 *first_base)
{
	struct fb_iov_sum c = { .uvec = uvec, .vlen = vlen < BDT_FB_IOV ? vlen : BDT_FB_IOV };

	bpf_loop((c.vlen + 7) / 8, fb_iov_step, &c, 0);
	*first_base = c.first_base;
	return c.bytes;
}

/* Position of a write without an explicit one: the file position (EOF with O_APPEND). */
static __always_inline u64 fb_file_pos(struct file *f)
{
	if (BPF_CORE_READ(f, f_flags) & BDT_O_APPEND)
		return BPF_CORE_READ(f, f_inode, i_size);
	return BPF_CORE_READ(f, f_pos);
}

/* One iocb of an io_submit call (bpf_loop step): kept in this thread's fb_aio entry. */
struct fb_aio_walk {
	u64 uiocbpp;
	u64 nr;
	u32 tid;
	u32 any;
};

static long fb_aio_step(u32 i, void *data)
{
	struct fb_aio_walk *w = data;
	struct iocb cb = {};
	struct fb_aio *a;
	struct file *f;
	u64 p = 0, count, base = 0;

	if (i >= w->nr || i >= BDT_FB_AIO)
		return 1;
	if (bpf_probe_read_user(&p, sizeof(p), (void *)(w->uiocbpp + i * sizeof(p))) || !p ||
	    bpf_probe_read_user(&cb, sizeof(cb), (void *)p))
		return 1;
	a = bpf_map_lookup_elem(&fb_aio, &w->tid);
	if (!a)
		return 1;
	a->n = i + 1;
	/* a nowait write that cannot go direct fails with EAGAIN: not a fallback */
	if ((cb.aio_lio_opcode != IOCB_CMD_PWRITE && cb.aio_lio_opcode != IOCB_CMD_PWRITEV) ||
	    (cb.aio_rw_flags & BDT_RWF_NOWAIT))
		return 0;
	f = fb_fd_file(cb.aio_fildes);
	if (cb.aio_lio_opcode == IOCB_CMD_PWRITE) {
		count = cb.aio_nbytes;
		base = cb.aio_buf;
	} else {
		count = fb_iov_bytes(cb.aio_buf, cb.aio_nbytes, &base);
	}
	if (fb_req_init(&a->r[i & (BDT_FB_AIO - 1)], f, cb.aio_offset, count, base, cb.aio_fildes,
			BDT_FB_LIBAIO))
		w->any = 1;
	return 0;
}

static __always_inline void fb_aio_enter(u64 nr, u64 uiocbpp)
{
	struct fb_aio_walk w = { .uiocbpp = uiocbpp, .nr = nr, .tid = cur_tid() };
	u32 zero = 0;
	struct fb_aio *z;

	if (!task_pass())
		return;
	z = bpf_map_lookup_elem(&fb_aio_zero, &zero);
	if (!z || bpf_map_update_elem(&fb_aio, &w.tid, z, BPF_ANY))
		return;
	bpf_loop(BDT_FB_AIO, fb_aio_step, &w, 0);
	if (w.any)
		__sync_fetch_and_add(&fb_pending_aio, 1);
	else
		bpf_map_delete_elem(&fb_aio, &w.tid);
}

/* io_submit returned the number of iocbs it submitted: those of them that
 * wrote through the buffered path never reached iomap_dio_rw_begin. */
static __always_inline void fb_aio_exit(s64 ret)
{
	u32 tid = cur_tid();
	struct fb_aio *a;

	if (!fb_pending_aio)
		return;
	a = bpf_map_lookup_elem(&fb_aio, &tid);
	if (!a)
		return;
#pragma unroll
	for (int i = 0; i < BDT_FB_AIO; i++)
		if (i < a->n && i < ret && a->r[i].id.ino && !a->r[i].seen)
			fb_emit(&a->r[i], a->r[i].count, true, BDT_SRC_TRACEPOINT);
	bpf_map_delete_elem(&fb_aio, &tid);
	__sync_fetch_and_add(&fb_pending_aio, -1); /* no fetch: BPF_XADD */
}

/* A write-family syscall or io_submit entered (args as the syscall has them). */
static __always_inline int fb_sys_enter(s64 nr, u64 a0, u64 a1, u64 a2, u64 a3, u64 a5)
{
	struct fb_req r = {};
	struct file *f;
	u64 pos, count, buf = 0;

	switch (nr) {
	case BDT_NR_IO_SUBMIT:
		fb_aio_enter(a1, a2);
		return 0;
	case BDT_NR_WRITE:
	case BDT_NR_PWRITE64:
	case BDT_NR_WRITEV:
	case BDT_NR_PWRITEV:
	case BDT_NR_PWRITEV2:
		break;
	default:
		return 0;
	}
	if (nr == BDT_NR_PWRITEV2 && (a5 & BDT_RWF_NOWAIT))
		return 0;
	f = fb_fd_file(a0);
	if (!f || !(BPF_CORE_READ(f, f_flags) & BDT_O_DIRECT))
		return 0;
	if (nr == BDT_NR_WRITE || nr == BDT_NR_PWRITE64) {
		count = a2;
		buf = a1;
	} else {
		count = fb_iov_bytes(a1, a2, &buf);
	}
	if (nr == BDT_NR_PWRITE64 || nr == BDT_NR_PWRITEV || (nr == BDT_NR_PWRITEV2 && (s64)a3 != -1))
		pos = a3;
	else
		pos = fb_file_pos(f);
	if (task_filtered()) {
		if (fb_req_init(&r, f, pos, count, buf, (s32)a0, BDT_FB_SYSCALL))
			fb_task_start(&r, FB_T_FULL, 0, 0);
		return 0;
	}
	/* the rest only if the write falls back (fb_task_done) */
	if (!fb_armed)
		return 0;
	r.pos = pos;
	r.count = count;
	r.fd = (s32)a0;
	r.via = BDT_FB_SYSCALL;
	fb_task_start(&r, FB_T_FILE, (u64)f, buf);
	return 0;
}

static __always_inline int fb_sys_exit(s64 nr, s64 ret)
{
	if (nr == BDT_NR_IO_SUBMIT)
		fb_aio_exit(ret);
	else
		fb_task_done(ret, BDT_SRC_TRACEPOINT);
	return 0;
}

/* raw sys_enter / sys_exit for syscall nr (syscalls.bpf.h); an exit has nothing
 * to do while no write of that kind is pending. */
static __always_inline int fb_raw_enter(u64 *ctx, s64 nr, bool btf)
{
	u64 a[6];

	if (!raw_sys_enter_args(ctx, nr, btf, a))
		return 0;
	return fb_sys_enter(nr, a[0], a[1], a[2], a[3], a[5]);
}

static __always_inline int fb_raw_exit(u64 *ctx, s64 nr, bool btf)
{
	if (!(nr == BDT_NR_IO_SUBMIT ? fb_pending_aio : fb_used_tid))
		return 0;
	if (!raw_sys_exit_is(ctx, nr, btf))
		return 0;
	return fb_sys_exit(nr, (s64)ctx[1]);
}

/* ---- io_uring (tracepoint backend) ----------------------------------------------- */
static __always_inline bool fb_uring_write_op(u8 op)
{
	if (op == bpf_core_enum_value(enum io_uring_op, IORING_OP_WRITEV) ||
	    op == bpf_core_enum_value(enum io_uring_op, IORING_OP_WRITE) ||
	    op == bpf_core_enum_value(enum io_uring_op, IORING_OP_WRITE_FIXED))
		return true;
	if (bpf_core_enum_value_exists(enum io_uring_op, IORING_OP_WRITEV_FIXED) &&
	    op == bpf_core_enum_value(enum io_uring_op, IORING_OP_WRITEV_FIXED))
		return true;
	return false;
}

/* The request's kiocb: struct io_rw, whose first member it is, lives in io_kiocb::cmd. */
static __always_inline u64 fb_uring_kiocb(const struct io_kiocb *req)
{
	return (u64)req + bpf_core_field_offset(struct io_kiocb, cmd);
}

/* io_uring_submit_req(req): a write request, whatever its file. Kept with the
 * submitter only; the file (O_DIRECT, btrfs, the filesystem filter, identity,
 * flags) is read at completion, and only for a write that wrote bytes without
 * iomap_dio_rw_begin: the request holds its file (req->file) until then. (A
 * registered file's request gets its file only when it is issued, after this
 * tracepoint; a plain fd's would need a walk of the fd table here.) The
 * position is the kiocb's at completion less what the write wrote. */
static __always_inline int fb_uring_submit(u64 *ctx, bool btf)
{
	struct io_kiocb *req = (void *)ctx[0];
	struct fb_req rs, *r = 0;
	u32 rflags = 0, i;
	u64 k, *sk;
	s32 fd;

	BDT_ARG_OR_RETURN(req);
	if (!fb_uring_write_op(BDT_RD(btf, req, opcode)))
		return 0;
	if (!fb_armed || !task_pass())
		return 0;
	/* REQ_F_FIXED_FILE (bit 0 of the request flags, IOSQE_FIXED_FILE_BIT): a
	 * registered file, whose cqe.fd indexes the registered files: no fd. (Where
	 * the flags are a u64, CO-RE widens the load; the low bits are kept.) */
	rflags = BDT_RD(btf, req, flags);
	fd = BDT_RD(btf, req, cqe.fd);
	k = addr_num(fb_uring_kiocb(req));
	/* its slot (fb_slot), else built on the stack for fb_kiocb */
	i = fb_slot_of(k);
	sk = bpf_map_lookup_elem(&fb_slot_key, &i);
	if (sk) {
		u64 old = __sync_val_compare_and_swap(sk, 0, k);

		/* free, or an older request of this kiocb that never completed */
		if (old == 0 || (old & ~BDT_FB_SEEN) == k)
			r = bpf_map_lookup_elem(&fb_slot, &i);
		if (r && old != 0 && old != k)
			*(volatile u64 *)sk = k; /* pending again, not seen */
		if (!r && old == 0)
			*(volatile u64 *)sk = 0;
	}
	if (!r) {
		__builtin_memset(&rs, 0, sizeof(rs));
		sk = 0;
		r = &rs;
	}
	r->flags = 0;
	r->seen = 0;
	r->pos = 0;
	r->file_later = 1;
	fb_req_task_btf(r, rflags & 1 ? -1 : fd, BDT_FB_IO_URING, btf);
	if (!sk) {
		if (bpf_map_update_elem(&fb_kiocb, &k, r, BPF_ANY))
			return 0;
		__sync_fetch_and_add(&fb_kiocb_n, 1);
	}
	if (!fb_used_kiocb)
		fb_used_kiocb = 1;
	return 0;
}

/* io_uring_complete(ctx, req, ...): res is an argument (6.1-6.1x) or in the cqe (newer). */
static __always_inline int fb_uring_complete(u64 *ctx, bool btf)
{
	struct io_kiocb *req = (void *)ctx[1];
	struct fb_req *r = 0;
	bool seen = false;
	s64 res;
	u64 k, *sk;
	u32 i;

	if (!fb_used_kiocb || !req)
		return 0;
	/* a read's kiocb is in neither table: a miss in fb_slot_key, and
	 * fb_kiocb is looked up only while it holds entries */
	k = addr_num(fb_uring_kiocb(req));
	i = fb_slot_of(k);
	sk = bpf_map_lookup_elem(&fb_slot_key, &i);
	if (sk) {
		u64 v = *sk;

		if (v == (k | BDT_FB_SEEN)) { /* went direct: its slot is free again, its entry not read */
			*(volatile u64 *)sk = 0;
			return 0;
		}
		if (v == k)
			r = bpf_map_lookup_elem(&fb_slot, &i);
	}
	if (!r) {
		sk = 0;
		if (!fb_kiocb_n)
			return 0;
		r = bpf_map_lookup_elem(&fb_kiocb, &k);
		if (!r)
			return 0;
		seen = r->seen;
	}
	if (uring_cmpl_cqe) {
		const struct io_uring_cqe *cqe = (void *)ctx[2];

		res = 0;
		if (cqe)
			res = BDT_RD(btf, cqe, res);
	} else {
		res = (s32)ctx[3];
	}
	if (!seen && res > 0) {
		/* the write advanced the kiocb's position by what it wrote */
		u64 end = BPF_CORE_READ((struct kiocb *)k, ki_pos);
		struct inode *inode = 0;

		if (end >= (u64)res && end - res != r->pos)
			r->pos = end - res;
		if (r->file_later) {
			inode = fb_file_inode(BPF_CORE_READ(req, file));
			if (inode)
				fb_req_file(r, inode, r->pos, (u64)res, 0);
		}
		if (!r->file_later || inode)
			fb_emit(r, (u64)res, false, BDT_SRC_TRACEPOINT);
	}
	if (sk)
		*(volatile u64 *)sk = 0;
	else if (bpf_map_delete_elem(&fb_kiocb, &k) == 0)
		__sync_fetch_and_add(&fb_kiocb_n, -1); /* no fetch: BPF_XADD */
	return 0;
}

#endif /* BDT_FALLBACK_BPF_H */
