/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: lazy emission, what the programs hold for a DIO
 * request and when they emit it (triggers.bpf.h says when).
 *
 * A request's state (struct dio_req, by kiocb in dio_slot or inflight_dio) holds what its
 * records need: the begin record's fields and up to BDT_HELD sub-records its
 * thread made (an ordered extent it created, an extent-map lookup). The
 * thread's current request is in task storage (cur_dio). A request whose
 * `emitted` is set has had its begin emitted: everything after it is
 * emitted at once. A request that ends without a trigger and unemitted goes
 * to its CPU's row of recent_dio (the last BDT_RECENT requests) instead of a
 * record. flush_inode() emits, for one inode, every request in flight and
 * every recent one that ended in the last recent_ns (or since the triggering
 * request began) and makes the inode hot for hot_ns: records of a hot inode
 * are emitted at once. With `lazy` off every request is emitted at its begin.
 */
#ifndef BDT_LAZY_BPF_H
#define BDT_LAZY_BPF_H

/* A record a request's thread made, held with the request: the request's
 * task and file identity are its own. */
#define BDT_HELD 3
/* A request lists the DIRECT ordered extents whose oe_add records it holds
 * (dio_req.oes): at most one per held record. A write with more records (a
 * 4th extent) is emitted at once, with everything after it, so every extent
 * of a write that is not emitted is listed. */
#define BDT_REQ_OES BDT_HELD
struct held_rec {
	u64 ts;
	u16 type;
	u8 phase;
	u8 src;
	u32 flags;
	u32 stack_id;
	u32 pad;
	union {
		struct bdt_extent ext;
		struct bdt_ordered oe;
	} u;
};

/* A DIO request between iomap_dio_rw_begin and iomap_dio_complete, by kiocb. */
struct dio_req {
	struct ident id;
	u64 ts;          /* begin: the dio_begin record's time, latency at completion */
	u64 pos;
	u64 count;
	u64 done_before;
	u64 buf_addr;
	u64 buf_file_ino;
	u64 buf_file_dev;
	u64 buf_file_off;
	u32 pid;
	u32 tid;
	char comm[BDT_COMM_LEN];
	u32 flags;       /* BDT_F_WRITE | BDT_F_AIO: the dio_end record's */
	u32 begin_flags; /* the dio_begin record's */
	u32 dio_flags;
	u32 fs_slot;     /* in dio_counts (counts.bpf.h) */
	union {
		struct {
			u8 src;     /* the dio_begin record's source */
			u8 emitted; /* the begin record was emitted: so is everything
				     * after it (set by req_claim once the request is
				     * in flight: another CPU's flush may set it) */
			u8 nheld;
			u8 noe;     /* entries of oes */
			u32 pad;
		};
		u64 word;           /* these, for req_claim's atomic OR (64-bit: the
				     * BPF target's atomics with fetch at any -mcpu) */
	};
	/* the stall trigger's count (stall_scan): completions on its filesystem
	 * that cannot be of requests older than this one are those beyond this
	 * number; bit 63: set (by the first scan that saw it in flight) */
	u64 later_base;
	/* the oe_slot entries (ordered.bpf.h) of the DIRECT ordered extents its
	 * thread added while it held their records (BDT_REQ_OES: all of them) */
	u16 oes[BDT_REQ_OES];
	u16 released;    /* in dio_slot: released (req_release), the key may follow */
	struct held_rec held[BDT_HELD];
};

/* Defined with the DIRECT ordered extents in flight (ordered.bpf.h): a write
 * that returned unemitted leaves its begin and end with its ordered extents;
 * once its records are emitted, they are marked so there. */
static __always_inline bool oe_call_end(const struct dio_req *r, u64 kiocb, u64 now, u64 pos,
					s64 ret, s32 error, u8 src);
static __always_inline void oe_call_emitted(const struct dio_req *r);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u64);
	__type(value, struct dio_req);
} inflight_dio SEC(".maps");

/*
 * Requests in flight, first choice: a direct-mapped table by a hash of the
 * kiocb (dio_slot_key[i]: the kiocb, 0 when free, kiocb | 1 while its
 * dio_slot[i] is filled). A request whose slot is free (or holds an older,
 * never completed request of the same kiocb) is kept there: two array
 * lookups and a compare-and-swap instead of an LRU hash update at its begin
 * and a lookup and delete at its end. A request whose slot is taken goes to
 * inflight_dio. req_lookup() finds a request in either.
 */
#define BDT_SLOT_BITS 12
#define BDT_SLOTS (1u << BDT_SLOT_BITS)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_SLOTS);
	__type(key, u32);
	__type(value, u64);
} dio_slot_key SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_SLOTS);
	__type(key, u32);
	__type(value, struct dio_req);
} dio_slot SEC(".maps");

/* The number a kernel address is: a tp_btf program gets its pointer arguments
 * as BTF pointers, on which the verifier allows no arithmetic but adding a
 * constant; the same value read back from a map is a number. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} addr_scratch SEC(".maps");

static __always_inline u64 addr_num(u64 addr)
{
	u32 zero = 0;
	u64 *v = bpf_map_lookup_elem(&addr_scratch, &zero);

	if (!v)
		return 0;
	*v = addr;
	return *(volatile u64 *)v;
}

/* kiocb: a number (addr_num) */
static __always_inline u32 slot_of(u64 kiocb)
{
	return (u32)((kiocb * 0x9E3779B97F4A7C15ull) >> (64 - BDT_SLOT_BITS));
}

/*
 * Claims the entry of a direct-mapped table whose key is *slot_key for key (a
 * number, addr_num): true when it was free (0) or held key itself (an older
 * entry of the same key that never ended, which the new one replaces). A
 * claimed entry's key reads key | 1 while its value is filled; the claimer
 * then stores key (filled: found by lookups) or 0 (given up).
 */
static __always_inline bool slot_claim(u64 *slot_key, u64 key)
{
	u64 old = __sync_val_compare_and_swap(slot_key, 0, key | 1);

	if (old == key && __sync_val_compare_and_swap(slot_key, key, key | 1) == key)
		old = 0;
	return old == 0;
}

/* Where a request lives while it is in flight (req_find). */
struct req_ref {
	struct dio_req *r;
	u64 *slot_key; /* its dio_slot_key entry; NULL: in inflight_dio */
};

static __always_inline struct req_ref req_find(u64 key)
{
	struct req_ref ref = {};
	u32 i = slot_of(key);
	u64 *k = bpf_map_lookup_elem(&dio_slot_key, &i);

	if (k && *k == key) {
		ref.r = bpf_map_lookup_elem(&dio_slot, &i);
		if (ref.r) {
			ref.slot_key = k;
			return ref;
		}
	}
	ref.r = bpf_map_lookup_elem(&inflight_dio, &key);
	return ref;
}

static __always_inline struct dio_req *req_lookup(u64 key)
{
	return req_find(key).r;
}

/* The request has ended (or never will: on_dio_begin): its slot is free again. */
static __always_inline void req_release(u64 key, const struct req_ref *ref)
{
	if (ref->slot_key) {
		ref->r->released = 1; /* before the key: cur_find reads it first */
		__sync_val_compare_and_swap(ref->slot_key, key, 0);
	}
	else
		bpf_map_delete_elem(&inflight_dio, &key);
}

/* Where a request is built before it goes into inflight_dio (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct dio_req);
} req_scratch SEC(".maps");

/* The VMA of this thread's last write buffer (dio.bpf.h, buf_vma()), valid
 * while its address space's mm_lock_seq is still seq. */
struct vma_cache {
	u64 mm;    /* 0: nothing cached */
	u64 start;
	u64 end;
	u64 pgoff;
	u64 ino;
	u64 dev;
	u32 seq;
	u32 flags; /* BDT_F_BUF_* */
};

/* The request this thread is submitting (em_exist has no inode; ordered
 * extents and extent-map lookups in this thread belong to it): the one it
 * began last, while that one is in flight under the same key and begin time
 * (cur_find). Its completion leaves it here: once released it is not found
 * (a recycled kiocb's next request has another begin time); an async
 * request's submission clears it (queued). With it, the thread's pending
 * O_DIRECT write (fb, fallback.bpf.h): iomap_dio_rw_begin marks that and
 * begins the request with one lookup of the thread. */
struct cur_req {
	u64 kiocb;         /* its key; 0: none */
	u64 ts;            /* its begin time (dio_req.ts) */
	u64 sb_dev;
	u64 ino;
	u64 tree_root;     /* &BTRFS_I(inode)->extent_tree's rb_root, to verify em_exist */
	u32 em_exist_seen; /* em_exist fired in this thread since its last get_extent record */
	u32 in_slot;       /* it was kept in dio_slot (else in inflight_dio) */
	struct vma_cache vma;
	struct fb_task fb;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cur_req);
} cur_dio SEC(".maps");

/* Threads whose em_exist_seen is set (approximately: a thread that exits
 * with it set is never counted back): while 0, a get_extent record is
 * wanted by no thread and the tracepoint skips the task-storage lookup. */
volatile __u64 em_exist_flagged = 0;

static __always_inline void em_exist_clear(struct cur_req *c)
{
	if (c->em_exist_seen) {
		c->em_exist_seen = 0;
		__sync_fetch_and_add(&em_exist_flagged, -1); /* no fetch: BPF_XADD */
	}
}

/* The thread's cur_dio (create: made if missing). A task no BPF local storage
 * was ever made for (task->bpf_storage NULL: e.g. the btrfs-endio-write worker
 * that removes ordered extents) has none: the helper's own answer, without
 * its call. */
static __always_inline struct cur_req *cur_req_get(bool create)
{
	struct task_struct *t = bpf_get_current_task_btf();

	if (!create && bpf_core_field_exists(t->bpf_storage) && !t->bpf_storage)
		return 0;
	return bpf_task_storage_get(&cur_dio, t, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* The request c names, while it is in flight (where it is kept, as req_find). */
static __always_inline struct req_ref cur_find(const struct cur_req *c)
{
	struct req_ref ref = {};
	u64 key;

	if (!c || !c->kiocb)
		return ref;
	key = c->kiocb;
	if (c->in_slot) {
		/* its own entry first (last written by its thread or completion), the
		 * shared key only while that says it may be in flight */
		u32 i = slot_of(key);
		struct dio_req *r = bpf_map_lookup_elem(&dio_slot, &i);
		u64 *k;

		if (!r || r->released || r->ts != c->ts)
			return ref;
		k = bpf_map_lookup_elem(&dio_slot_key, &i);
		if (k && *k == key) {
			ref.r = r;
			ref.slot_key = k;
		}
	} else {
		ref.r = bpf_map_lookup_elem(&inflight_dio, &key);
	}
	if (!ref.r || ref.r->ts != c->ts)
		ref.r = 0;
	return ref;
}

static __always_inline struct dio_req *cur_request(const struct cur_req *c)
{
	return cur_find(c).r;
}

/* Does this thread have a traced DIO request in flight (submission side)? */
static __always_inline bool in_traced_dio(void)
{
	return cur_request(cur_req_get(false)) != 0;
}

/* This thread's request, when it is on this inode (*kiocb: its key). */
static __always_inline struct dio_req *cur_request_on(u64 sb_dev, u64 ino, u64 *kiocb)
{
	struct cur_req *c = cur_req_get(false);

	if (!c || !c->kiocb || c->sb_dev != sb_dev || c->ino != ino)
		return 0;
	*kiocb = c->kiocb;
	return cur_request(c);
}

/* ---- hot inodes -------------------------------------------------------------- */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct inode_key);
	__type(value, u64); /* hot until (bpf_ktime_get_ns) */
} hot_inodes SEC(".maps");

/* The latest time any inode is hot until: no lookup while nothing is hot. */
__u64 hot_until_max = 0;

static __always_inline bool is_hot(u64 sb_dev, u64 ino, u64 now)
{
	struct inode_key k = { .sb_dev = sb_dev, .ino = ino };
	u64 *until;

	if (!lazy)
		return true;
	if (now >= hot_until_max)
		return false;
	until = bpf_map_lookup_elem(&hot_inodes, &k);
	return until && now < *until;
}

static __always_inline void make_hot(u64 sb_dev, u64 ino, u64 now)
{
	struct inode_key k = { .sb_dev = sb_dev, .ino = ino };
	u64 until = now + hot_ns;

	bpf_map_update_elem(&hot_inodes, &k, &until, BPF_ANY);
	if (until > hot_until_max)
		hot_until_max = until; /* racy max: a concurrent smaller store loses at most one window */
}

/* ---- recently completed requests ------------------------------------------ */
#define BDT_RECENT 32
struct recent_req {
	u64 seq;         /* odd while being written */
	struct dio_req r;
	u64 end_ts;
	u64 end_pos;
	s64 ret;
	s32 error;
	u8 end_src;
	u8 pad[3];
};

/* nr_cpus rows of BDT_RECENT (userspace sizes it); row c is written by CPU c only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_RECENT);
	__type(key, u32);
	__type(value, struct recent_req);
} recent_dio SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} recent_head SEC(".maps");

static __always_inline void recent_push(const struct dio_req *r, u64 end_ts, u64 end_pos, s64 ret,
					s32 error, u8 src)
{
	u32 zero = 0, key;
	u64 *head = bpf_map_lookup_elem(&recent_head, &zero);
	struct recent_req *s;
	u64 n;

	if (!head)
		return;
	n = __sync_fetch_and_add(head, 1); /* a completion in irq may nest on this CPU */
	key = bpf_get_smp_processor_id() * BDT_RECENT + (u32)(n % BDT_RECENT);
	s = bpf_map_lookup_elem(&recent_dio, &key);
	if (!s)
		return;
	s->seq += 1; /* odd: being written */
	__builtin_memcpy(&s->r, r, __builtin_offsetof(struct dio_req, held));
	/* the records it holds (emit_req_held reads no more) */
#pragma unroll
	for (int i = 0; i < BDT_HELD; i++) {
		if (i >= r->nheld)
			break;
		__builtin_memcpy(&s->r.held[i], &r->held[i], sizeof(r->held[i]));
	}
	s->end_ts = end_ts;
	s->end_pos = end_pos;
	s->ret = ret;
	s->error = error;
	s->end_src = src;
	__sync_fetch_and_add(&s->seq, 1); /* even again, ordered after the stores */
}

/* ---- making the records of a request ---------------------------------------- */
static __always_inline void req_task(struct bdt_raw_event *e, const struct dio_req *r)
{
	e->pid = r->pid;
	e->tid = r->tid;
	__builtin_memcpy(e->comm, r->comm, BDT_COMM_LEN);
	put_ident(e, &r->id);
}

static __always_inline void emit_req_begin(const struct dio_req *r)
{
	struct bdt_raw_event *e = rec_new(BDT_EV_DIO_BEGIN, r->src, r->ts);

	if (!e)
		return;
	req_task(e, r);
	e->flags |= r->begin_flags;
	e->u.dio.pos = r->pos;
	e->u.dio.count = r->count;
	e->u.dio.done_before = r->done_before;
	e->u.dio.dio_flags = r->dio_flags;
	e->u.dio.buf_addr = r->buf_addr;
	e->u.dio.buf_file_ino = r->buf_file_ino;
	e->u.dio.buf_file_dev = r->buf_file_dev;
	e->u.dio.buf_file_off = r->buf_file_off;
	bdt_submit(e);
}

static __always_inline void emit_held_rec(const struct dio_req *r, const struct held_rec *h)
{
	struct bdt_raw_event *e = rec_new(h->type, h->src, h->ts);

	if (!e)
		return;
	req_task(e, r);
	e->phase = h->phase;
	e->flags |= h->flags;
	e->stack_id = h->stack_id;
	__builtin_memcpy(&e->u, &h->u, sizeof(h->u));
	bdt_submit(e);
}

static __always_inline void emit_req_held(const struct dio_req *r)
{
#pragma unroll
	for (int i = 0; i < BDT_HELD; i++) {
		if (i >= r->nheld)
			break;
		emit_held_rec(r, &r->held[i]);
	}
}

/* stall: the stall trigger fired at this completion (stall_scan): the stalled
 * request's begin time, thread and inode and the count, in fields a dio_end
 * has no other use for (NULL: it did not). */
static __always_inline void emit_req_end_stall(const struct dio_req *r, u64 ts, u8 src, u64 pos,
					       s64 ret, s32 error, u32 stack_id,
					       const struct bdt_facts *stall)
{
	struct bdt_raw_event *e = rec_new(BDT_EV_DIO_END, src, ts);

	if (!e)
		return;
	req_task(e, r);
	e->flags |= r->flags | BDT_F_DIR_KNOWN;
	e->stack_id = stack_id;
	/* as the tracepoint prints it: ki_pos, already advanced by the bytes done */
	e->u.dio.pos = pos;
	e->u.dio.ret = ret;
	e->u.dio.error = error;
	if (stall) {
		e->u.dio.stalled_ts = stall->stalled_ts;
		e->u.dio.stalled_tid = stall->stalled_tid;
		e->u.dio.stalled_ino = stall->stalled_ino;
		e->u.dio.later_done = stall->stalled_later;
	}
	bdt_submit(e);
}

static __always_inline void emit_req_end(const struct dio_req *r, u64 ts, u8 src, u64 pos, s64 ret,
					 s32 error, u32 stack_id)
{
	emit_req_end_stall(r, ts, src, pos, ret, error, stack_id, 0);
}

/* Sets the request's `emitted` (in flight: a flush on another CPU may race
 * its thread or its completion): true for the one that set it. */
static __always_inline bool req_claim(struct dio_req *r)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const u64 bit = 1ull << 8;  /* emitted: the word's second byte */
#else
	const u64 bit = 1ull << 48;
#endif
	_Static_assert(__builtin_offsetof(struct dio_req, emitted) ==
			       __builtin_offsetof(struct dio_req, word) + 1 &&
		       __builtin_offsetof(struct dio_req, word) % 8 == 0,
		       "emitted is the second byte of an aligned word");

	if (r->emitted)
		return false;
	return !(__sync_fetch_and_or(&r->word, bit) & bit);
}

/* Emit what the request holds, once: from now on it is emitted as it goes. */
static __always_inline void flush_request(struct dio_req *r)
{
	if (!req_claim(r))
		return;
	emit_req_begin(r);
	emit_req_held(r);
}

/* A record of this request's thread, made now (h: its own part; the task and
 * file are the request's): emitted at once when the request is emitted, else
 * held with it. When it holds BDT_HELD already the request is emitted now
 * (never a record lost). Counted as an event either way. */
static __always_inline void req_put(struct dio_req *r, const struct held_rec *h)
{
	count_event(h->type);
	if (!r->emitted) {
		u32 n = r->nheld;

		if (n < BDT_HELD) {
			__builtin_memcpy(&r->held[n], h, sizeof(*h));
			r->nheld = n + 1;
			return;
		}
	}
	flush_request(r);
	emit_held_rec(r, h);
}

/* ---- flush: everything held for an inode -------------------------------------- */
struct bpf_map;

/* Requests a flush leaves out, in flight or recent (by begin time): emitted
 * already by the csum_direct trigger (direct_writes.bpf.h) or acked_ioerr's
 * (ordered.bpf.h, oe_emit_call). */
#define BDT_FLUSH_SKIP 4

struct flush_ctx {
	u64 sb_dev;
	u64 ino;
	u64 since; /* recent requests that ended at or after this */
	u64 skip[BDT_FLUSH_SKIP];
};

static long flush_inflight_cb(struct bpf_map *map, const u64 *key, struct dio_req *r,
			      struct flush_ctx *fc)
{
	if (r->id.ino != fc->ino || r->id.sb_dev != fc->sb_dev)
		return 0;
#pragma unroll
	for (int j = 0; j < BDT_FLUSH_SKIP; j++)
		if (fc->skip[j] && fc->skip[j] == r->ts)
			return 0;
	flush_request(r);
	return 0;
}

static long flush_slot_cb(struct bpf_map *map, const u32 *i, struct dio_req *r, struct flush_ctx *fc)
{
	u32 k = *i;
	u64 *key = bpf_map_lookup_elem(&dio_slot_key, &k);

	if (key && *key && !(*key & 1))
		flush_inflight_cb(map, key, r, fc);
	return 0;
}

static long flush_recent_cb(u32 i, struct flush_ctx *fc)
{
	struct recent_req *s = bpf_map_lookup_elem(&recent_dio, &i);
	u64 seq;

	if (!s)
		return 1; /* past the last row */
	seq = s->seq;
	if ((seq & 1) || s->r.emitted || s->r.id.ino != fc->ino || s->r.id.sb_dev != fc->sb_dev ||
	    s->end_ts < fc->since)
		return 0;
#pragma unroll
	for (int j = 0; j < BDT_FLUSH_SKIP; j++)
		if (fc->skip[j] && fc->skip[j] == s->r.ts)
			return 0;
	s->r.emitted = 1;
	emit_req_begin(&s->r);
	emit_req_held(&s->r);
	emit_req_end(&s->r, s->end_ts, s->end_src, s->end_pos, s->ret, s->error, 0);
	oe_call_emitted(&s->r);
	return 0;
}

/*
 * A trigger fired on this inode: emit every request held for it (in flight,
 * and ended at or after `since` within recent_ns) and keep it hot. Nothing is
 * held for an inode that is hot already.
 */
static __always_inline void flush_inode_ctx(struct flush_ctx *fc, u64 now)
{
	if (!lazy)
		return;
	if (!is_hot(fc->sb_dev, fc->ino, now)) {
		if (now > recent_ns && fc->since < now - recent_ns)
			fc->since = now - recent_ns;
		bpf_for_each_map_elem(&dio_slot, flush_slot_cb, fc, 0);
		bpf_for_each_map_elem(&inflight_dio, flush_inflight_cb, fc, 0);
		bpf_loop(nr_cpus * BDT_RECENT, flush_recent_cb, fc, 0);
	}
	make_hot(fc->sb_dev, fc->ino, now);
}

static __always_inline void flush_inode(u64 sb_dev, u64 ino, u64 since, u64 now)
{
	struct flush_ctx fc = { .sb_dev = sb_dev, .ino = ino, .since = since };

	flush_inode_ctx(&fc, now);
}

/* ---- the stall trigger ------------------------------------------------------ */
/*
 * A request still in flight past the stall threshold (stall_ns plus its size
 * at 4 MiB/s) that nothing emitted: what dio-stuck judges needs its records
 * and a later request on the same filesystem that completed. So the check
 * runs where that completion is seen (on_dio_complete): at most once per
 * second per filesystem (stall_scan_at, by dio_counts' filesystem slot), a
 * scan of the requests in flight for the oldest such request that began
 * before the completing one. When it finds one the trigger fires: its inode
 * is flushed (and hot) and the completing request is emitted, its dio_end
 * carrying the stalled request's begin time and how many requests on the
 * filesystem that began after it completed meanwhile, at least (dio-stuck's
 * evidence: a slow device holds those too). That count costs the clean path
 * nothing: the filesystem's completions are counted per CPU anyway
 * (dio_counts), and the scan sums them (fs_done). The first scan that sees
 * a request in flight sets its later_base: that sum plus the other requests
 * in flight on the filesystem then (older ones among them may complete
 * later: not counted; the completing one is among them, one fewer counted). At the trigger the count
 * is the sum now minus the stalled request's base (at least 1: the completing
 * request began after it). Not counted (0) for the filesystems beyond
 * BDT_FS_SLOTS, which share one slot of dio_counts.
 */
#define BDT_STALL_SCAN_NS 1000000000ULL
#define BDT_LATER_SET (1ULL << 63)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_FS_SLOTS + 1);
	__type(key, u32);
	__type(value, u64);
} stall_scan_at SEC(".maps");

struct stall_ctx {
	u64 sb_dev;
	u64 before; /* began before this (the completing request's begin) */
	u64 now;
	u64 ino;    /* found: its inode, begin and thread */
	u64 ts;
	u32 tid;
	u32 pad;
	u64 base;   /* found: its later_base */
	u64 done;   /* the filesystem's completions (fs_done); 0: not counted */
	u64 open;   /* requests in flight on the filesystem (the completing one too) */
};

static __always_inline bool req_stalled(const struct dio_req *r, const struct stall_ctx *sc)
{
	u64 bytes = r->count < (1ULL << 34) ? r->count : (1ULL << 34);
	u64 limit = stall_ns + ((bytes * 1000000000ULL) >> 22); /* its size at 4 MiB/s */

	return !r->emitted && r->ts < sc->before && sc->now > r->ts && sc->now - r->ts >= limit &&
	       (!sc->ino || r->ts < sc->ts);
}

/* A request in flight, seen by the scan: counted, and the stalled one if it is. */
static __always_inline void stall_visit(const struct dio_req *r, struct stall_ctx *sc)
{
	if (r->id.sb_dev != sc->sb_dev)
		return;
	sc->open += 1;
	if (req_stalled(r, sc)) {
		sc->ino = r->id.ino;
		sc->ts = r->ts;
		sc->tid = r->tid;
		sc->base = r->later_base;
	}
}

static long stall_slot_cb(struct bpf_map *map, const u32 *i, struct dio_req *r, struct stall_ctx *sc)
{
	u32 k = *i;
	u64 *key = bpf_map_lookup_elem(&dio_slot_key, &k);

	if (key && *key && !(*key & 1))
		stall_visit(r, sc);
	return 0;
}

static long stall_inflight_cb(struct bpf_map *map, const u64 *key, struct dio_req *r,
			      struct stall_ctx *sc)
{
	stall_visit(r, sc);
	return 0;
}

/* The second pass: a base for the requests in flight on the filesystem that
 * have none: each of the others in flight (the completing one too, to keep
 * it simple: one fewer counted) may be older and complete later. */
static __always_inline void stall_base(struct dio_req *r, const struct stall_ctx *sc)
{
	if (r->id.sb_dev == sc->sb_dev && !(r->later_base & BDT_LATER_SET))
		r->later_base = BDT_LATER_SET | (sc->done + sc->open - 1);
}

static long stall_base_slot_cb(struct bpf_map *map, const u32 *i, struct dio_req *r,
			       struct stall_ctx *sc)
{
	stall_base(r, sc); /* a free or half-filled slot gets one too: cleared at its begin */
	return 0;
}

static long stall_base_inflight_cb(struct bpf_map *map, const u64 *key, struct dio_req *r,
				   struct stall_ctx *sc)
{
	stall_base(r, sc);
	return 0;
}

struct fs_done_ctx {
	u32 k;    /* the filesystem's first key in dio_counts (its reads) */
	u32 pad;
	u64 sum;
};

static long fs_done_cb(u32 cpu, struct fs_done_ctx *c)
{
#pragma unroll
	for (u32 d = BDT_DIR_READ; d <= BDT_DIR_WRITE; d++) {
		u32 k = c->k + d;
		struct bdt_dio_count *n = bpf_map_lookup_percpu_elem(&dio_counts, &k, cpu);

		if (!n)
			return 1; /* past the possible CPUs */
		c->sum += n->requests + n->again;
	}
	return 0;
}

/* The requests of filesystem slot fs_slot that completed since the tracer
 * started (its counts in dio_counts, summed over the CPUs); 0: not counted. */
static __always_inline u64 fs_done(u32 fs_slot)
{
	struct fs_done_ctx c = { .k = fs_slot * BDT_DIRS };

	if (fs_slot >= BDT_FS_SLOTS)
		return 0;
	bpf_loop(nr_cpus, fs_done_cb, &c, 0);
	return c.sum;
}

/* At a completion on this filesystem (fs_slot, sb_dev) of a request that
 * began at `before`: the stall trigger's fact (struct bdt_facts) and its
 * count. */
static __always_inline void stall_scan(struct bdt_facts *f, u32 fs_slot, u64 sb_dev, u64 before,
				       u64 now)
{
	struct stall_ctx sc = { .sb_dev = sb_dev, .before = before, .now = now };
	u64 *at, next;

	if (!lazy || !(trigger_mask & (1u << BDT_TRIG_STALL)))
		return;
	at = bpf_map_lookup_elem(&stall_scan_at, &fs_slot);
	if (!at)
		return;
	next = *at;
	if (now < next || __sync_val_compare_and_swap(at, next, now + BDT_STALL_SCAN_NS) != next)
		return;
	sc.done = fs_done(fs_slot);
	bpf_for_each_map_elem(&dio_slot, stall_slot_cb, &sc, 0);
	bpf_for_each_map_elem(&inflight_dio, stall_inflight_cb, &sc, 0);
	f->stalled_ino = sc.ino;
	f->stalled_ts = sc.ts;
	f->stalled_tid = sc.tid;
	if (sc.ino && sc.done) {
		u64 base = sc.base & ~BDT_LATER_SET;

		/* at least the completing one (no base yet: this is the first scan that saw it) */
		f->stalled_later = (sc.base & BDT_LATER_SET) && sc.done > base ? sc.done - base : 1;
	}
	if (sc.done) {
		bpf_for_each_map_elem(&dio_slot, stall_base_slot_cb, &sc, 0);
		bpf_for_each_map_elem(&inflight_dio, stall_base_inflight_cb, &sc, 0);
	}
}

/*
 * A record about one file that its policy wants (h: type, source, time,
 * phase, flags, payload; the task is the current one), decided before its
 * file's identity is read. Eager: make it now (true). Lazy: `fired` (the
 * triggers of its hook point) flushes the file, make it now; on a hot file
 * make it now; when this thread's request is on the file it is held with the
 * request; otherwise it is dropped (false for both). Counted as an event in
 * every case. The caller makes it with file_event_make(). *held, *held_key:
 * the request it went to when it went to one (false), else NULL.
 */
static __always_inline bool file_event_now_held(u64 sb_dev, u64 ino, struct held_rec *h,
						u32 fired, struct dio_req **held, u64 *held_key)
{
	*held = 0;
	if (lazy) {
		u64 key = 0;
		struct dio_req *r = cur_request_on(sb_dev, ino, &key);

		/* h->ts 0: the clock not read yet (a removal, ordered.bpf.h); read
		 * for a use: a flush, a record held with the request, a file that
		 * may be hot. Unread, the file is not: no file was ever made hot. */
		if (!h->ts && (fired || r || hot_until_max))
			h->ts = bpf_ktime_get_ns();
		if (fired) {
			if (r)
				flush_request(r);
			/* no request: the last recent_ns of the file */
			flush_inode(sb_dev, ino, r ? r->ts : 0, h->ts);
		} else if (!h->ts || !is_hot(sb_dev, ino, h->ts)) {
			if (r) {
				req_put(r, h);
				*held = r;
				*held_key = key;
			} else {
				count_event(h->type);
			}
			return false;
		}
	}
	count_event(h->type);
	return true;
}

static __always_inline bool file_event_now(u64 sb_dev, u64 ino, struct held_rec *h, u32 fired)
{
	struct dio_req *r;
	u64 k;

	return file_event_now_held(sb_dev, ino, h, fired, &r, &k);
}

static __always_inline void file_event_make(const struct ident *id, const struct held_rec *h)
{
	struct bdt_raw_event *e = rec_new(h->type, h->src, h->ts);

	if (!e)
		return;
	fill_task(e);
	put_ident(e, id);
	e->phase = h->phase;
	e->flags |= h->flags;
	e->stack_id = h->stack_id;
	__builtin_memcpy(&e->u, &h->u, sizeof(h->u));
	bdt_submit(e);
}

static __always_inline void file_event(const struct ident *id, struct held_rec *h, u32 fired)
{
	if (file_event_now(id->sb_dev, id->ino, h, fired))
		file_event_make(id, h);
}

#endif /* BDT_LAZY_BPF_H */
