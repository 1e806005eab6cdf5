/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: direct I/O requests. iomap_dio_rw_begin /
 * iomap_dio_complete (tracepoints) or btrfs_dio_write/read and
 * iomap_dio_complete (function hooks, 6.1): the request in flight, the
 * thread's current request, the write buffer's VMA and --qemu latency
 * histograms.
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
	u32 pad;
	u64 ts; /* bpf_ktime_get_ns() at begin: latency at completion (lat_hist) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, struct dio_req);
} inflight_dio SEC(".maps");

/* Latency histograms by (tgid, dev, ino, direction), see events.h. A plain
 * hash (not LRU): a full map drops new keys and counts them in
 * lat_overflow[0] instead of silently evicting a VM's history. Userspace
 * sizes it (max_entries) and deletes the keys of processes that exited. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bdt_lat_key);
	__type(value, struct bdt_lat_val);
} lat_hist SEC(".maps");

/* All zeros, never written: the initial value of a new lat_hist entry
 * (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bdt_lat_val);
} lat_zero SEC(".maps");

/* [0]: latency samples dropped because lat_hist was full. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lat_overflow SEC(".maps");

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
	{
		u64 t = bpf_get_current_pid_tgid();

		req.pid = t >> 32;
		req.tid = (u32)t;
	}
	bpf_get_current_comm(req.comm, sizeof(req.comm));
	req.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&inflight_dio, &key, &req, BPF_ANY);
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
	e->u.dio.count = BPF_CORE_READ(iter, count);
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
static __always_inline u32 lat_bucket(u64 v)
{
	u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r < BDT_LAT_BUCKETS ? r : BDT_LAT_BUCKETS - 1;
}

/* A traced request completed (any context: the submitter's thread, irq, a
 * worker): add its latency to the submitter's histogram for this file. */
static __always_inline void lat_record(const struct dio_req *req, s64 ret, s32 error)
{
	struct bdt_lat_key k = {};
	struct bdt_lat_val *v;
	u32 zero = 0, b;
	u64 now = bpf_ktime_get_ns(), lat;

	/* -EAGAIN: io_uring's nowait attempt, retried from io-wq: not a request */
	if (!lat_hist_on || !req->ts || ret == -11 || (ret <= 0 && error == -11))
		return;
	lat = now > req->ts ? now - req->ts : 0;
	k.pid = req->pid;
	k.write = (req->flags & BDT_F_WRITE) ? 1 : 0;
	k.dev = req->id.dev;
	k.ino = req->id.ino;
	v = bpf_map_lookup_elem(&lat_hist, &k);
	if (!v) {
		struct bdt_lat_val *z = bpf_map_lookup_elem(&lat_zero, &zero);

		if (!z)
			return;
		bpf_map_update_elem(&lat_hist, &k, z, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&lat_hist, &k);
		if (!v) {
			u64 *n = bpf_map_lookup_elem(&lat_overflow, &zero);

			if (n)
				__sync_fetch_and_add(n, 1);
			return;
		}
	}
	b = lat_bucket(lat);
	if (b < BDT_LAT_BUCKETS)
		__sync_fetch_and_add(&v->slots[b], 1);
	__sync_fetch_and_add(&v->sum_ns, lat);
	if (lat > v->max_ns)
		v->max_ns = lat;
}

static __always_inline int on_dio_complete(u64 *ctx, u8 src, void *pctx)
{
	struct kiocb *iocb = (void *)ctx[0];
	s32 error = (s32)ctx[1];
	s64 ret = (s64)ctx[2];
	u64 key = (u64)iocb;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct dio_req *req = bpf_map_lookup_elem(&inflight_dio, &key);
	struct bdt_raw_event *e;

	bpf_map_delete_elem(&cur_dio, &tid);
	BDT_ARG_OR_RETURN(iocb);
	if (req) {
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
		lat_record(req, ret, error);
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
