/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: direct I/O requests. iomap_dio_rw_begin /
 * iomap_dio_complete (tracepoints) or btrfs_dio_write/read and
 * iomap_dio_complete (function hooks, 6.1): the request's state (lazy.bpf.h),
 * the write buffer's VMA, the triggers of a begin and an end, each
 * completion's traffic counts (counts.bpf.h).
 */
#ifndef BDT_DIO_BPF_H
#define BDT_DIO_BPF_H

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

/* ---- DIO begin ---------------------------------------------------------------- */
struct vma_info {
	u64 addr;
	u64 ino;
	u64 dev;
	u64 off;
	u32 flags;
	u64 start; /* the VMA's */
	u64 end;
	u64 pgoff;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_info *vi = data;
	unsigned long vm_flags = BPF_CORE_READ(vma, vm_flags);
	struct file *f = BPF_CORE_READ(vma, vm_file);

	vi->flags |= BDT_F_BUF_FOUND;
	vi->start = BPF_CORE_READ(vma, vm_start);
	vi->end = BPF_CORE_READ(vma, vm_end);
	vi->pgoff = BPF_CORE_READ(vma, vm_pgoff);
	if (vm_flags & BDT_VM_SHARED)
		vi->flags |= BDT_F_BUF_SHARED;
	if (vm_flags & BDT_VM_WRITE)
		vi->flags |= BDT_F_BUF_WRITABLE;
	if (f) {
		struct inode *inode = BPF_CORE_READ(f, f_inode);
		struct super_block *sb = BPF_CORE_READ(inode, i_sb);

		vi->ino = BPF_CORE_READ(inode, i_ino);
		if (is_btrfs_sb(sb, false))
			vi->dev = BPF_CORE_READ(btrfs_i(inode), root, anon_dev);
		else
			vi->dev = BPF_CORE_READ(sb, s_dev);
		vi->off = (vi->pgoff << BDT_PAGE_SHIFT) + (vi->addr - vi->start);
	}
	return 0;
}

/* This task's mm and its mm_lock_seq, when the kernel has one and no change
 * of a mapping is under way (seqcount: even); false otherwise. */
static __always_inline bool mm_seq(u64 *mm, u32 *seq)
{
	struct mm_struct *m;

	if (bpf_core_field_exists(((struct mm_struct *)0)->mm_lock_seq)) {
		/* 6.13+: BTF pointers, direct loads */
		m = bpf_get_current_task_btf()->mm;
		if (!m)
			return false;
		*seq = m->mm_lock_seq.sequence;
		*mm = addr_num((u64)m);
		return !(*seq & 1);
	}
	if (bpf_core_field_exists(((struct mm_struct___int *)0)->mm_lock_seq)) {
		m = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), mm);
		*seq = BPF_CORE_READ((struct mm_struct___int *)m, mm_lock_seq);
		*mm = (u64)m;
		return m != 0;
	}
	return false;
}

/*
 * The write buffer's VMA (vi->addr in, the rest out): bpf_find_vma(), or this
 * thread's cache of the VMA its last buffer was in (c) while the address
 * is in it and the address space did not change since. Every change of a
 * mapping (mmap, munmap, mprotect, mremap, ...) holds mmap_lock for writing,
 * and mm_lock_seq moves when it is taken (6.13+) or released (6.4-6.12). The
 * seq is read before the walk: a change after it leaves a cache that never
 * matches again. Kernels without mm_lock_seq walk every time.
 */
static __always_inline void buf_vma(struct vma_info *vi, struct vma_cache *c)
{
	u64 mm = 0;
	u32 seq = 0;
	bool seq_ok = c && mm_seq(&mm, &seq);

	if (seq_ok && c->mm == mm && c->seq == seq && vi->addr >= c->start && vi->addr < c->end) {
		vi->flags = c->flags;
		vi->ino = c->ino;
		vi->dev = c->dev;
		if (c->ino)
			vi->off = (c->pgoff << BDT_PAGE_SHIFT) + (vi->addr - c->start);
		return;
	}
	bpf_find_vma(bpf_get_current_task_btf(), vi->addr, vma_cb, vi, 0);
	if (!c)
		return;
	c->mm = 0;
	if (seq_ok && (vi->flags & BDT_F_BUF_FOUND)) {
		c->start = vi->start;
		c->end = vi->end;
		c->pgoff = vi->pgoff;
		c->ino = vi->ino;
		c->dev = vi->dev;
		c->flags = vi->flags;
		c->seq = seq;
		c->mm = mm;
	}
}

static __always_inline int on_dio_begin(u64 *ctx, u8 src, bool btf)
{
	struct kiocb *iocb = (void *)ctx[0];
	struct iov_iter *iter = (void *)ctx[1];
	u32 dio_flags = (u32)ctx[2];
	u64 done_before = ctx[3];
	struct file *file;
	struct inode *inode;
	struct super_block *sb;
	struct btrfs_inode *bi;
	struct bdt_facts f = { .point = BDT_PT_DIO_BEGIN };
	struct vma_info vi = {};
	struct bdt_event_count *cnt;
	struct dio_req *r = 0;
	struct cur_req *cr;
	u64 key = addr_num((u64)iocb), sb_dev, *slot_key;
	u32 zero = 0, fired, slot;
	bool pass, fb_write;

	BDT_ARG_OR_RETURN(iocb);
	BDT_ARG_OR_RETURN(iter);
	file = BDT_RD(btf, iocb, ki_filp);
	inode = BDT_RD(btf, file, f_inode);
	sb = BDT_RD(btf, inode, i_sb);
	if (!is_btrfs_sb(sb, btf))
		return 0;
	sb_dev = BDT_RD(btf, sb, s_dev);
	pass = fs_pass(sb_dev) && task_pass();
	fb_write = (fb_used_tid | fb_used_kiocb | fb_pending_aio) && iter_is_write(iter, btf);
	/* the thread's task storage: its request, and its pending write's mark
	 * below (created for a request only: a pending write made it already) */
	cr = 0;
	if (pass)
		cr = cur_req_get(true);
	else if (fb_write && fb_used_tid)
		cr = cur_req_get(false);
	/* the O_DIRECT write this is (fallback.bpf.h) reached iomap: not a fallback */
	if (fb_write) {
		u64 ino = BDT_RD(btf, inode, i_ino);

		fb_mark_direct(cr, key, ino, BDT_RD(btf, iocb, ki_pos));
	}
	if (!pass)
		return 0;
	/* this thread's previous request is still in flight and was not queued:
	 * it returned before iomap_dio_complete (an early error), it is over */
	if (cr && cr->kiocb && cr->kiocb != key) {
		struct req_ref prev = cur_find(cr);

		if (prev.r)
			req_release(cr->kiocb, &prev);
	}
	/* its slot (lazy.bpf.h), else built in req_scratch and copied to inflight_dio */
	slot = slot_of(key);
	slot_key = bpf_map_lookup_elem(&dio_slot_key, &slot);
	if (slot_key && slot_claim(slot_key, key)) {
		r = bpf_map_lookup_elem(&dio_slot, &slot);
		if (!r)
			__sync_lock_test_and_set(slot_key, 0);
	}
	if (!r)
		slot_key = 0;
	if (!r)
		r = bpf_map_lookup_elem(&req_scratch, &zero);
	if (!r)
		return 0;
	__builtin_memset(r, 0, __builtin_offsetof(struct dio_req, held));
	bi = btrfs_i(inode);
	btrfs_ident_cached(&r->id, bi, sb_dev, BDT_RD(btf, inode, i_ino), btf);
	touch_inode(&r->id);

	if (iter_is_write(iter, btf))
		r->flags |= BDT_F_WRITE;
	if (BDT_RD(btf, iocb, ki_complete))
		r->flags |= BDT_F_AIO;
	r->pos = BDT_RD(btf, iocb, ki_pos);
	r->count = BDT_RD(btf, iter, count);
	r->done_before = done_before;
	r->dio_flags = dio_flags;
	r->src = src;
	r->fs_slot = fs_slot_of(r->id.sb_dev, r->id.fsid);
	{
		u64 t = bpf_get_current_pid_tgid();

		r->pid = t >> 32;
		r->tid = (u32)t;
	}
	task_comm(r->comm, btf);
	r->ts = bpf_ktime_get_ns();

	vi.addr = iter_user_addr(iter, btf);
	/* the buffer's VMA matters for writes only (self-mmap, shared buffers) */
	if (vi.addr && (all_events || (r->flags & BDT_F_WRITE)))
		buf_vma(&vi, cr ? &cr->vma : 0);
	r->begin_flags = r->flags | vi.flags;
	if ((btf ? BDT_RDU(bi, flags) : BPF_CORE_READ(bi, flags)) & BDT_INODE_NODATASUM)
		r->begin_flags |= BDT_F_NODATASUM;
	if (dio_flags & BDT_IOMAP_DIO_PARTIAL)
		r->begin_flags |= BDT_F_PARTIAL;
	r->buf_addr = vi.addr;
	r->buf_file_ino = vi.ino;
	r->buf_file_dev = vi.dev;
	r->buf_file_off = vi.off;

	cnt = event_count();
	count_event_in(cnt, BDT_EV_DIO_BEGIN);
	if (cnt)
		cnt->dio_begins += 1;
	f.write = r->flags & BDT_F_WRITE;
	f.nodatasum = r->begin_flags & BDT_F_NODATASUM;
	f.done_before = done_before;
	f.count = r->count;
	f.buf_flags = vi.flags;
	f.buf_ino = vi.ino;
	fired = bdt_fired(&f);
	if (fired || is_hot(r->id.sb_dev, r->id.ino, r->ts)) {
		r->emitted = 1;
		emit_req_begin(r);
	}
	if (slot_key)
		__sync_lock_test_and_set(slot_key, key); /* filled: visible to req_find */
	else
		bpf_map_update_elem(&inflight_dio, &key, r, BPF_ANY);
	if (cr) {
		cr->kiocb = key;
		cr->ts = r->ts;
		cr->in_slot = slot_key != 0;
		cr->sb_dev = r->id.sb_dev;
		cr->ino = r->id.ino;
		cr->tree_root = em_tree_root(bi);
		em_exist_clear(cr);
	}
	if (fired)
		flush_inode(r->id.sb_dev, r->id.ino, r->ts, r->ts);
	return 0;
}

/* This thread is done submitting its request, which stays in flight (a
 * completed one needs no clearing: cur_find no longer finds it). */
static __always_inline void cur_req_done(void)
{
	struct cur_req *cr = cur_req_get(false);

	if (cr)
		cr->kiocb = 0;
}

/* iomap_dio_rw_queued: an async request was submitted; this thread is done with it. */
static __always_inline int on_dio_queued(u64 *ctx)
{
	cur_req_done();
	return 0;
}

/* ---- DIO end ------------------------------------------------------------------ */
static long spin_cb(u32 i, u64 *until)
{
	return bpf_ktime_get_ns() >= *until; /* 1: stop */
}

/* test_end_spin_us (config.bpf.h): a testing aid */
static __always_inline void test_end_spin(void)
{
	u64 until;

	if (!test_end_spin_us)
		return;
	until = bpf_ktime_get_ns() + test_end_spin_us * 1000ull;
	bpf_loop(1u << 22, spin_cb, &until, 0);
}

static __always_inline int on_dio_complete(u64 *ctx, u8 src, void *pctx, bool btf)
{
	struct kiocb *iocb = (void *)ctx[0];
	s32 error = (s32)ctx[1];
	s64 ret = (s64)ctx[2];
	u64 key = addr_num((u64)iocb);
	struct req_ref ref = req_find(key);
	struct dio_req *r = ref.r;
	struct bdt_event_count *cnt = event_count();
	struct bdt_facts f = { .point = BDT_PT_DIO_END, .ret = ret, .error = error };
	struct bdt_dio_outcome o;
	u64 now = bpf_ktime_get_ns(), pos;
	u32 fired, stack_id = 0;
	bool out, kept = false;

	/* its thread's task storage keeps naming it: released below, cur_find
	 * no longer finds it */
	BDT_ARG_OR_RETURN(iocb);
	/* as the tracepoint prints it: ki_pos, already advanced by the bytes done */
	pos = BDT_RD(btf, iocb, ki_pos);
	if (r) {
		bool write = r->flags & BDT_F_WRITE;
		u64 lat = now > r->ts ? now - r->ts : 0;

		if (cnt)
			cnt->dio_ends += 1;
		o = bdt_dio_outcome_of(ret, error, write, r->done_before, r->count);
		count_dio_end(r->fs_slot, write ? BDT_DIR_WRITE : BDT_DIR_READ, &o, lat, true);
		count_qemu_dio(r->pid, write, r->id.dev, r->id.ino, &o, lat);
		count_event_in(cnt, BDT_EV_DIO_END);
		f.write = write;
		f.count = r->count;
		f.done_before = r->done_before;
		stall_scan(&f, r->fs_slot, r->id.sb_dev, r->ts, now);
		fired = bdt_fired(&f);
		/* a stalled request elsewhere on the filesystem: its inode; this
		 * request (a later one that completed) is emitted below */
		if (fired & (1u << BDT_TRIG_STALL))
			flush_inode(r->id.sb_dev, f.stalled_ino, f.stalled_ts, now);
		if (fired & ~(1u << BDT_TRIG_STALL))
			flush_inode(r->id.sb_dev, r->id.ino, r->ts, now);
		out = r->emitted || fired || is_hot(r->id.sb_dev, r->id.ino, now);
		/* acknowledged bytes: kept with its ordered extents (acked_ioerr); one
		 * of them failed already without finding it: emitted here */
		if (!out && write && ret > 0 && error == 0 && r->noe) {
			kept = true;
			test_end_spin();
			out = oe_call_end(r, key, now, pos, ret, error, src);
		}
		/* a flush on another CPU emitted its begin since the check above (at a
		 * failure of its extent over before oe_call_end looked): its end too */
		if (!out) {
			asm volatile("" ::: "memory");
			out = *(volatile u8 *)&r->emitted;
		}
		if (out) {
			flush_request(r);
			if (kept) /* its extents need not emit it again */
				oe_call_emitted(r);
			/* error origin of a traced request that failed with EIO / EEXIST */
			if (ret == -5 || ret == -17 || error == -5 || error == -17)
				stack_id = stack_of(pctx);
			/* Completion may run in irq or a worker: the record names the submitter. */
			emit_req_end_stall(r, now, src, pos, ret, error, stack_id,
					   (fired & (1u << BDT_TRIG_STALL)) ? &f : 0);
			/* a checksummed file's direct write (csum_direct) */
			dw_complete(r, ret > 0 && error == 0, true, now, pos, ret, error, src);
		} else {
			recent_push(r, now, pos, ret, error, src);
			dw_complete(r, ret > 0 && error == 0, false, now, pos, ret, error, src);
		}
		req_release(key, &ref);
		return 0;
	}
	/* Begin not seen (started before tracing, or filtered out). */
	if (task_filtered())
		return 0;
	{
		struct inode *inode = BPF_CORE_READ(iocb, ki_filp, f_inode);
		struct super_block *sb = BPF_CORE_READ(inode, i_sb);
		struct bdt_raw_event *e;
		struct ident id = {};

		if (!is_btrfs_sb(sb, false) || !fs_pass(BPF_CORE_READ(sb, s_dev)))
			return 0;
		btrfs_ident(&id, btrfs_i(inode));
		if (cnt)
			cnt->dio_unmatched += 1;
		o = bdt_dio_outcome_of(ret, error, false, 0, 0);
		count_dio_end(fs_slot_of(id.sb_dev, id.fsid), BDT_DIR_UNKNOWN, &o, 0, false);
		count_event_in(cnt, BDT_EV_DIO_END);
		fired = bdt_fired(&f);
		if (fired)
			flush_inode(id.sb_dev, id.ino, now, now);
		if (!fired && !is_hot(id.sb_dev, id.ino, now))
			return 0;
		e = rec_new(BDT_EV_DIO_END, src, now);
		if (!e)
			return 0;
		fill_task(e);
		put_ident(e, &id);
		e->u.dio.pos = pos;
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

	return on_dio_begin(t, src, false);
}

/* Submission done (sync: iomap_dio_complete follows in this thread; async: queued). */
static __always_inline int fn_dio_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	cur_req_done();
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
	return on_dio_complete(t, src, ctx, false);
}

#endif /* BDT_DIO_BPF_H */
