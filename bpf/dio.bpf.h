/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: direct I/O requests. iomap_dio_rw_begin /
 * iomap_dio_complete (tracepoints) or btrfs_dio_write/read and
 * iomap_dio_complete (function hooks, 6.1): the request in flight, the
 * thread's current request, the write buffer's VMA; each completion's
 * traffic counts (counts.bpf.h).
 */
#ifndef BDT_DIO_BPF_H
#define BDT_DIO_BPF_H

/* A DIO request between iomap_dio_rw_begin and iomap_dio_complete, by kiocb. */
struct dio_req {
	struct ident id;
	u64 pos;
	u32 pid;
	u32 tid;
	char comm[BDT_COMM_LEN];
	u32 flags; /* BDT_F_WRITE | BDT_F_AIO */
	u32 fs_slot; /* in dio_counts (counts.bpf.h) */
	u64 ts; /* bpf_ktime_get_ns() at begin: latency at completion */
	u64 count;
	u64 done_before;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, struct dio_req);
} inflight_dio SEC(".maps");

/* The inode this thread is submitting DIO for (em_exist has no inode). */
struct cur_req {
	struct ident id;
	u64 tree_root; /* &BTRFS_I(inode)->extent_tree's rb_root, to verify em_exist */
	u32 em_exist_seen; /* em_exist fired in this thread since its last get_extent record */
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct cur_req);
} cur_dio SEC(".maps");

/* iomap_dio_complete() frees the dio: its kiocb and error are kept from entry. */
struct dio_cmpl {
	u64 iocb;
	s64 error;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct dio_cmpl);
} dio_cmpl_tid SEC(".maps");

/* Does this thread have a traced DIO request in flight (submission side)? */
static __always_inline bool in_traced_dio(void)
{
	u32 tid = cur_tid();

	return bpf_map_lookup_elem(&cur_dio, &tid) != 0;
}

/* ---- DIO begin ---------------------------------------------------------------- */
struct vma_info {
	u64 addr;
	u64 ino;
	u64 dev;
	u64 off;
	u32 flags;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_info *vi = data;
	unsigned long vm_flags = BPF_CORE_READ(vma, vm_flags);
	struct file *f = BPF_CORE_READ(vma, vm_file);

	vi->flags |= BDT_F_BUF_FOUND;
	if (vm_flags & BDT_VM_SHARED)
		vi->flags |= BDT_F_BUF_SHARED;
	if (vm_flags & BDT_VM_WRITE)
		vi->flags |= BDT_F_BUF_WRITABLE;
	if (f) {
		struct inode *inode = BPF_CORE_READ(f, f_inode);
		struct super_block *sb = BPF_CORE_READ(inode, i_sb);

		vi->ino = BPF_CORE_READ(inode, i_ino);
		if (is_btrfs_sb(sb))
			vi->dev = BPF_CORE_READ(btrfs_i(inode), root, anon_dev);
		else
			vi->dev = BPF_CORE_READ(sb, s_dev);
		vi->off = (BPF_CORE_READ(vma, vm_pgoff) << BDT_PAGE_SHIFT) +
			  (vi->addr - BPF_CORE_READ(vma, vm_start));
	}
	return 0;
}

static __always_inline int on_dio_begin(u64 *ctx, u8 src)
{
	struct kiocb *iocb = (void *)ctx[0];
	struct iov_iter *iter = (void *)ctx[1];
	u32 dio_flags = (u32)ctx[2];
	u64 done_before = ctx[3];
	struct inode *inode;
	struct super_block *sb;
	struct btrfs_inode *bi;
	struct bdt_raw_event *e;
	struct dio_req req = {};
	struct vma_info vi = {};
	u64 key = (u64)iocb;
	u32 bflags;

	BDT_ARG_OR_RETURN(iocb);
	BDT_ARG_OR_RETURN(iter);
	inode = BPF_CORE_READ(iocb, ki_filp, f_inode);
	sb = BPF_CORE_READ(inode, i_sb);
	if (!is_btrfs_sb(sb))
		return 0;
	if (!fs_pass(BPF_CORE_READ(sb, s_dev)) || !task_pass())
		return 0;
	bi = btrfs_i(inode);
	btrfs_ident(&req.id, bi);
	touch_inode(&req.id);

	if (iter_is_write(iter))
		req.flags |= BDT_F_WRITE;
	if (BPF_CORE_READ(iocb, ki_complete))
		req.flags |= BDT_F_AIO;
	req.pos = BPF_CORE_READ(iocb, ki_pos);
	req.count = BPF_CORE_READ(iter, count);
	req.done_before = done_before;
	req.fs_slot = fs_slot_of(req.id.sb_dev, req.id.fsid);
	{
		u64 t = bpf_get_current_pid_tgid();

		req.pid = t >> 32;
		req.tid = (u32)t;
	}
	bpf_get_current_comm(req.comm, sizeof(req.comm));
	req.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&inflight_dio, &key, &req, BPF_ANY);
	{
		struct bdt_event_count *c = event_count();

		if (c)
			c->dio_begins += 1;
	}
	{
		struct cur_req cr = { .id = req.id, .tree_root = em_tree_root(bi) };

		bpf_map_update_elem(&cur_dio, &req.tid, &cr, BPF_ANY);
	}

	vi.addr = iter_user_addr(iter);
	/* the buffer's VMA matters for writes only (self-mmap, shared buffers) */
	if (vi.addr && (all_events || (req.flags & BDT_F_WRITE)))
		bpf_find_vma(bpf_get_current_task_btf(), vi.addr, vma_cb, &vi, 0);

	e = reserve_src(BDT_EV_DIO_BEGIN, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &req.id);
	e->flags |= req.flags | vi.flags;
	bflags = BPF_CORE_READ(bi, flags);
	if (bflags & BDT_INODE_NODATASUM)
		e->flags |= BDT_F_NODATASUM;
	if (dio_flags & BDT_IOMAP_DIO_PARTIAL)
		e->flags |= BDT_F_PARTIAL;
	e->u.dio.pos = req.pos;
	e->u.dio.count = req.count;
	e->u.dio.done_before = done_before;
	e->u.dio.dio_flags = dio_flags;
	e->u.dio.buf_addr = vi.addr;
	e->u.dio.buf_file_ino = vi.ino;
	e->u.dio.buf_file_dev = vi.dev;
	e->u.dio.buf_file_off = vi.off;
	bdt_submit(e);
	return 0;
}

/* iomap_dio_rw_queued: an async request was submitted; this thread is done with it. */
static __always_inline int on_dio_queued(u64 *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&cur_dio, &tid);
	return 0;
}

/* ---- DIO end ------------------------------------------------------------------ */
static __always_inline int on_dio_complete(u64 *ctx, u8 src, void *pctx)
{
	struct kiocb *iocb = (void *)ctx[0];
	s32 error = (s32)ctx[1];
	s64 ret = (s64)ctx[2];
	u64 key = (u64)iocb;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct dio_req *req = bpf_map_lookup_elem(&inflight_dio, &key);
	struct bdt_event_count *cnt = event_count();
	struct bdt_raw_event *e;
	struct bdt_dio_outcome o;

	bpf_map_delete_elem(&cur_dio, &tid);
	BDT_ARG_OR_RETURN(iocb);
	if (req) {
		bool write = req->flags & BDT_F_WRITE;
		u64 now = bpf_ktime_get_ns();
		u64 lat = now > req->ts ? now - req->ts : 0;

		if (cnt)
			cnt->dio_ends += 1;
		o = bdt_dio_outcome_of(ret, error, write, req->done_before, req->count);
		count_dio_end(req->fs_slot, write ? BDT_DIR_WRITE : BDT_DIR_READ, &o, lat, true);
		count_qemu_dio(req->pid, write, req->id.dev, req->id.ino, &o, lat);
		/* Completion may run in irq or a worker: report the submitter. */
		e = reserve_src(BDT_EV_DIO_END, src);
		if (e) {
			/* error origin of a traced request that failed with EIO / EEXIST */
			if (ret == -5 || ret == -17 || error == -5 || error == -17)
				e->stack_id = stack_of(pctx);
			e->pid = req->pid;
			e->tid = req->tid;
			__builtin_memcpy(e->comm, req->comm, BDT_COMM_LEN);
			put_ident(e, &req->id);
			e->flags |= req->flags | BDT_F_DIR_KNOWN;
			/* as the tracepoint prints it: ki_pos, already advanced by the bytes done */
			e->u.dio.pos = BPF_CORE_READ(iocb, ki_pos);
			e->u.dio.ret = ret;
			e->u.dio.error = error;
			bdt_submit(e);
		}
		bpf_map_delete_elem(&inflight_dio, &key);
		return 0;
	}
	/* Begin not seen (started before tracing, or filtered out). */
	if (task_filtered())
		return 0;
	{
		struct inode *inode = BPF_CORE_READ(iocb, ki_filp, f_inode);
		struct super_block *sb = BPF_CORE_READ(inode, i_sb);
		struct ident id = {};

		if (!is_btrfs_sb(sb) || !fs_pass(BPF_CORE_READ(sb, s_dev)))
			return 0;
		btrfs_ident(&id, btrfs_i(inode));
		if (cnt)
			cnt->dio_unmatched += 1;
		o = bdt_dio_outcome_of(ret, error, false, 0, 0);
		count_dio_end(fs_slot_of(id.sb_dev, id.fsid), BDT_DIR_UNKNOWN, &o, 0, false);
		e = reserve_src(BDT_EV_DIO_END, src);
		if (!e)
			return 0;
		fill_task(e);
		put_ident(e, &id);
		e->u.dio.pos = BPF_CORE_READ(iocb, ki_pos);
		e->u.dio.ret = ret;
		e->u.dio.error = error;
		bdt_submit(e);
	}
	return 0;
}

/* ---- DIO begin/end where iomap has no tracepoints (6.1) ------------------------- */
/* btrfs_dio_write/btrfs_dio_read(iocb, iter, done_before): btrfs' calls into
 * __iomap_dio_rw, which btrfs always passes IOMAP_DIO_PARTIAL. */
static __always_inline int fn_dio_enter(void *ctx, u64 *a, u8 src)
{
	u64 t[4] = { a[0], a[1], BDT_IOMAP_DIO_PARTIAL, a[2] };

	return on_dio_begin(t, src);
}

/* Submission done (sync: iomap_dio_complete follows in this thread; async: queued). */
static __always_inline int fn_dio_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	u32 tid = cur_tid();

	bpf_map_delete_elem(&cur_dio, &tid);
	return 0;
}

static __always_inline int fn_dio_cmpl_enter(void *ctx, u64 *a, u8 src)
{
	struct iomap_dio *dio = (void *)a[0];
	struct dio_cmpl c = {};
	u32 tid = cur_tid();

	c.iocb = (u64)BPF_CORE_READ(dio, iocb);
	c.error = BPF_CORE_READ(dio, error);
	bpf_map_update_elem(&dio_cmpl_tid, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline int fn_dio_cmpl_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	u32 tid = cur_tid();
	struct dio_cmpl *c = bpf_map_lookup_elem(&dio_cmpl_tid, &tid);
	u64 t[3];

	if (!c)
		return 0;
	t[0] = c->iocb;
	t[1] = (u64)c->error;
	t[2] = (u64)ret;
	bpf_map_delete_elem(&dio_cmpl_tid, &tid);
	return on_dio_complete(t, src, ctx);
}

#endif /* BDT_DIO_BPF_H */
