/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: ordered extents. The btrfs_ordered_extent_* tracepoints,
 * btrfs_finish_ordered_extent, and btrfs_finish_ordered_io where that
 * tracepoint is missing. They run in btrfs workers: filtered by inode; with
 * lazy emission those a DIO request's thread makes are held with it, and the
 * DIRECT ones in flight are kept for the oe_stall and acked_ioerr triggers
 * (below).
 */
#ifndef BDT_ORDERED_BPF_H
#define BDT_ORDERED_BPF_H

static __always_inline bool oe_ioerr(u64 kflags)
{
	return oe_ioerr_bit < 64 && ((kflags >> (oe_ioerr_bit & 63)) & 1);
}

/* Written through the page cache: no DIRECT flag (false when the bit is unknown). */
static __always_inline bool oe_buffered(u64 kflags)
{
	return oe_direct_bit < 64 && !((kflags >> (oe_direct_bit & 63)) & 1);
}

#define BDT_PF_KTHREAD 0x00200000

static __always_inline bool user_task(void)
{
	struct task_struct *t = bpf_get_current_task_btf();

	return !(t->flags & BDT_PF_KTHREAD);
}

/* ---- DIRECT ordered extents in flight: oe_stall, acked_ioerr ------------------ */
/*
 * dio-stuck's second rule: a DIRECT ordered extent still open past the stall
 * threshold while later ones on the same filesystem are removed. Its request
 * may have completed cleanly (no record), so every DIRECT ordered extent in
 * flight is kept in a table by its address (oe_slot: the first free of
 * BDT_OE_PROBES slots from a hash of the address; one that finds all taken
 * is not kept): its oe_add record and its writer. At the
 * removal of one, at most once per second per filesystem (oe_scan_at, 16
 * buckets by superblock), the table is scanned for the oldest extent on that
 * filesystem that was added before it, is open past stall_ns and has not
 * fired yet. Found: oe_stall fires; the stuck extent's oe_add is emitted and
 * its file flushed (hot: its removal will be emitted too), and the removed
 * extent's oe_add and oe_remove are emitted: the later completion that tells
 * a hang from a slow device (a slow device holds the later extents too).
 *
 * dio-acked-unbacked: an ordered extent that fails after its write returned
 * with bytes acknowledged (btrfs_finish_ordered_io failing in a worker, the
 * write long gone: no record of it is held any more). So the write is kept
 * with its extents: its request lists the slots of the extents its thread
 * added while holding their records (dio_req.oes), and when it returns
 * unemitted with bytes acknowledged, its begin and end (struct dw_rec, as the
 * csum_direct trigger keeps a write) are copied into each of them
 * (oe_call_end). At the first IOERR of one of them, at oe_mark_finished or
 * at its removal, acked_ioerr fires: the write's begin, the oe_add records
 * of its extents still in flight and its end are emitted (their own times),
 * then the file is flushed and hot (the removals follow). A write emitted
 * otherwise (a flush of the recent requests) is marked emitted here
 * (oe_call_emitted). The write's return and the extent's failure may run on
 * two CPUs at once: each side publishes, then checks, on the entry's word
 * `acked` (atomic ORs, so of two the second sees the first): the return
 * keeps its call and sets BDT_OE_CALL, then looks for BDT_OE_FAILED; the
 * failure sets BDT_OE_FAILED, then looks for BDT_OE_CALL. The one that sees
 * the other's bit emits the write (the failure: from the entry, oe_emit_call;
 * the return: as a request it emits, on_dio_complete), and BDT_OE_CALL_OUT
 * claims that emission once. A failure that is over (its entry freed) before
 * the return looks finds the request still in flight: its flush emitted the
 * begin (dio_req.emitted), and the return, checking that after it kept its
 * call, emits the end. A part split off one of its extents (oe_split: current
 * kernels split a write's extent at each bio it submits) is a new extent the
 * tracepoints never show added: while the write holds the split record, the
 * part is kept too, by its start (oe_split_key: a split takes the front of
 * the extent), with the extent's oe_add record, and listed with the write.
 * A request holds at most BDT_HELD records and lists one extent per held
 * oe_add or oe_split; with more it is emitted at once (lazy.bpf.h).
 */
#define BDT_OE_SLOT_BITS 11
#define BDT_OE_SLOTS (1u << BDT_OE_SLOT_BITS)
#define BDT_OE_PROBES 4
#define BDT_OE_SCAN_BUCKETS 16

struct oe_open {
	u64 sb_dev;
	u64 ino;
	u64 bi;              /* its btrfs_inode (the extent holds a reference): the
			      * identity is read from it only when a record is made */
	u32 pid;
	u32 tid;
	char comm[BDT_COMM_LEN];
	struct held_rec add; /* its oe_add record */
	u64 held_by;         /* the request (kiocb) that holds that record (0: none) */
	u8 emitted;          /* that record was emitted */
	u8 fired;            /* oe_stall fired for it */
	u8 split;            /* a part split off a kept extent (oe_track_split): kept by
			      * its start, not its address; add is the extent's */
	u8 pad[5];
	u64 acked;           /* BDT_OE_*: its write and its failure (atomic ORs) */
	struct dw_rec call;  /* its write, returned unemitted with bytes acknowledged
			      * (valid while acked has BDT_OE_CALL; its valid and emitted
			      * are not used here) */
};

#define BDT_OE_CALL 1     /* call holds its write (stored before the bit is set) */
#define BDT_OE_FAILED 2   /* an IOERR of the extent was seen */
#define BDT_OE_CALL_OUT 4 /* the write's records were emitted (or are being: claimed) */

/* the extent's address (addr_num), 0 when free, address | 1 while being filled */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_OE_SLOTS);
	__type(key, u32);
	__type(value, u64);
} oe_slot_key SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_OE_SLOTS);
	__type(key, u32);
	__type(value, struct oe_open);
} oe_slot SEC(".maps");

/* A bucket's next scan (oe_stall_scan). A removal reads the precise clock for
 * the gate only once jiffies reach next_j: a jiffies count the gate cannot
 * open before (three quarters of the period at the jiffies rate measured
 * between the last two scans, if less than 16 s apart, less two ticks; 0: read
 * it always). Exact unless the jiffies lag the clock by more than ~1/7 s. */
struct oe_scan_gate {
	u64 next;   /* bpf_ktime_get_ns */
	u64 next_j; /* bpf_jiffies64 */
	u64 last;   /* the last scan: its time */
	u64 last_j; /* ... and jiffies */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_OE_SCAN_BUCKETS);
	__type(key, u32);
	__type(value, struct oe_scan_gate);
} oe_scan_at SEC(".maps");

static __always_inline bool oe_stall_on(void)
{
	return lazy && (trigger_mask & (1u << BDT_TRIG_OE_STALL));
}

static __always_inline bool acked_on(void)
{
	return lazy && (trigger_mask & (1u << BDT_TRIG_ACKED_IOERR));
}

/* The table is kept for either trigger. */
static __always_inline bool oe_track_on(void)
{
	return lazy && (trigger_mask & ((1u << BDT_TRIG_OE_STALL) | (1u << BDT_TRIG_ACKED_IOERR)));
}

static __always_inline bool oe_direct(u64 kflags)
{
	return oe_direct_bit < 64 && ((kflags >> (oe_direct_bit & 63)) & 1);
}

/* The p-th slot of the extent at oe's probe sequence. */
static __always_inline u32 oe_probe(u64 oe, u32 p)
{
	return ((u32)((oe * 0x9E3779B97F4A7C15ull) >> (64 - BDT_OE_SLOT_BITS)) + p) &
	       (BDT_OE_SLOTS - 1);
}

/* The key of a part split off a DIRECT extent of (sb_dev, ino) at file offset
 * off: bit 1 set, never an extent's address (8-byte aligned). */
static __always_inline u64 oe_split_key(u64 sb_dev, u64 ino, u64 off)
{
	u64 h = (sb_dev * 0x9E3779B97F4A7C15ull) ^ (ino * 0xC2B2AE3D27D4EB4Full) ^
		(off * 0x165667B19E3779F9ull);

	return (h & ~3ull) | 2;
}

/* Where the extent at a key is kept: its slot and that slot's key entry. */
struct oe_ref {
	u32 i;  /* ~0u: not kept */
	u64 *k; /* oe_slot_key[i] */
};

/* The slot of the extent at key (i ~0u: not kept). */
static __always_inline struct oe_ref oe_find_ref(u64 key)
{
	struct oe_ref ref = { .i = ~0u };

#pragma unroll
	for (u32 p = 0; p < BDT_OE_PROBES; p++) {
		u32 i = oe_probe(key, p);
		u64 *k = bpf_map_lookup_elem(&oe_slot_key, &i);

		if (k && *k == key) {
			ref.i = i;
			ref.k = k;
			return ref;
		}
	}
	return ref;
}

static __always_inline u32 oe_find(u64 key)
{
	return oe_find_ref(key).i;
}

/* A DIRECT ordered extent was added (h: its record, emitted or not; held_by:
 * the request of this thread that holds it, 0: none). Its slot (~0u: not
 * kept, all its probes taken). */
static __always_inline u32 oe_track_add(u64 key, const struct held_rec *h, u64 sb_dev, u64 ino,
					u64 bi, bool emitted, u64 held_by, u8 split, bool btf)
{
	u32 i = ~0u;
	u64 *k = 0, t;
	struct oe_open *o;

#pragma unroll
	for (u32 p = 0; p < BDT_OE_PROBES; p++) {
		u32 j = oe_probe(key, p);

		if (p < test_oe_taken) /* testing aid (config.bpf.h) */
			continue;
		k = bpf_map_lookup_elem(&oe_slot_key, &j);
		if (k && __sync_val_compare_and_swap(k, 0, key | 1) == 0) {
			i = j;
			break;
		}
	}
	if (i == ~0u || !k) {
		struct bdt_event_count *c = event_count();

		if (c) /* not kept: counted (oe_untracked) */
			c->oe_untracked += 1;
		return ~0u;
	}
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (!o) {
		__sync_lock_test_and_set(k, 0);
		return ~0u;
	}
	o->sb_dev = sb_dev;
	o->ino = ino;
	o->bi = bi;
	t = bpf_get_current_pid_tgid();
	o->pid = t >> 32;
	o->tid = (u32)t;
	task_comm(o->comm, btf);
	__builtin_memcpy(&o->add, h, sizeof(*h));
	o->emitted = emitted;
	o->held_by = held_by;
	o->fired = 0;
	o->split = split;
	o->acked = 0;
	__sync_lock_test_and_set(k, key); /* filled */
	return i;
}

/* The extent at okey was split (its front is a new extent) by the thread of
 * the request r (key kiocb) that holds its record and the split record (not
 * emitted): the part is kept by its start (file offset off) and listed with r. */
static __always_inline void oe_track_split(u64 okey, u64 sb_dev, u64 ino, u64 off,
					  struct dio_req *r, u64 kiocb, bool btf)
{
	struct oe_open *o;
	u32 i = oe_find(okey), n, s;

	if (i == ~0u || !r || r->emitted)
		return;
	n = r->noe;
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (n >= BDT_REQ_OES || !o || o->held_by != kiocb)
		return;
	s = oe_track_add(oe_split_key(sb_dev, ino, off), &o->add, sb_dev, ino, o->bi, o->emitted,
			 o->held_by, 1, btf);
	if (s == ~0u)
		return;
	/* n's bound again, at the store: clang keeps n across oe_track_add on the stack and
	 * the 6.1 verifier loses its range there ("R3 max value is outside of the allowed
	 * memory range"), refusing the split hook's programs */
	barrier_var(n);
	if (n >= BDT_REQ_OES)
		return;
	r->oes[n] = (u16)s;
	r->noe = n + 1;
}

/* The extent at `key` (ref: where it is kept, oe_find_ref) is gone: its slot
 * is free again. */
static __always_inline void oe_track_remove(u64 key, const struct oe_ref *ref)
{
	if (ref->k && *ref->k == key)
		__sync_val_compare_and_swap(ref->k, key, 0);
}

/* The entry's oe_add record, now (its own time, its writer). */
static __always_inline void oe_make_add(const struct oe_open *o)
{
	struct bdt_raw_event *e;
	struct ident id = {};

	e = rec_new(o->add.type, o->add.src, o->add.ts);
	if (!e)
		return;
	e->pid = o->pid;
	e->tid = o->tid;
	__builtin_memcpy(e->comm, o->comm, BDT_COMM_LEN);
	btrfs_ident(&id, (const struct btrfs_inode *)o->bi);
	put_ident(e, &id);
	e->phase = o->add.phase;
	e->flags |= o->add.flags;
	e->stack_id = o->add.stack_id;
	__builtin_memcpy(&e->u, &o->add.u, sizeof(o->add.u));
	bdt_submit(e);
}

/* Its oe_add record, once, with its writer; called after its file was
 * flushed: a record held by a request in flight went out with it, one held by
 * a request that ended within recent_ns went out with the recent ones. */
static __always_inline void oe_emit_add(struct oe_open *o, u64 now)
{
	if (o->held_by) {
		struct dio_req *r = req_lookup(o->held_by);

		if (r && r->emitted && r->id.ino == o->ino && r->ts <= o->add.ts)
			o->emitted = 1;
		else if (now < o->add.ts + recent_ns)
			o->emitted = 1;
	}
	if (o->emitted)
		return;
	o->emitted = 1;
	oe_make_add(o);
}

/* ---- acked_ioerr: a write kept with its extents ---- */

/* The entry at slot i, when it is an extent of the write r (by its thread and
 * begin time) that holds r's begin and end. */
static __always_inline struct oe_open *oe_of_call(u32 i, u32 tid, u64 ts)
{
	u64 *k = bpf_map_lookup_elem(&oe_slot_key, &i);
	struct oe_open *o;

	if (!k || !*k || (*k & 1))
		return 0;
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (!o || !(o->acked & BDT_OE_CALL) || o->tid != tid || dw_req(&o->call)->ts != ts)
		return 0;
	return o;
}

/* The write r (kiocb) returned unemitted with bytes acknowledged (on_dio_complete):
 * its begin and end go to each of its extents still in flight. True when one
 * of them failed before (BDT_OE_FAILED: its failure found no call to emit):
 * the caller emits the write then, and marks it emitted (oe_call_emitted). */
static __always_inline bool oe_call_end(const struct dio_req *r, u64 kiocb, u64 now, u64 pos,
					s64 ret, s32 error, u8 src)
{
	bool failed = false;

	if (!acked_on())
		return false;
#pragma unroll
	for (int j = 0; j < BDT_REQ_OES; j++) {
		u32 i;
		u64 *k;
		struct oe_open *o;

		if (j >= r->noe)
			break;
		i = r->oes[j];
		k = bpf_map_lookup_elem(&oe_slot_key, &i);
		if (!k || !*k || (*k & 1))
			continue;
		o = bpf_map_lookup_elem(&oe_slot, &i);
		/* still the extent this request's thread added, its call not kept yet */
		if (!o || o->held_by != kiocb || o->add.ts < r->ts || o->tid != r->tid ||
		    (o->acked & BDT_OE_CALL))
			continue;
		__builtin_memcpy(o->call.req, r, BDT_DW_HEAD);
		o->call.end_ts = now;
		o->call.end_pos = pos;
		o->call.ret = ret;
		o->call.error = error;
		o->call.end_src = src;
		/* published (a full barrier after the stores), then checked */
		if (__sync_fetch_and_or(&o->acked, BDT_OE_CALL) & BDT_OE_FAILED)
			failed = true;
	}
	return failed;
}

/* The write r's records were emitted (a flush of the recent requests, with
 * its held oe_add records): its extents need not emit them again. */
static __always_inline void oe_call_emitted(const struct dio_req *r)
{
	if (!acked_on())
		return;
#pragma unroll
	for (int j = 0; j < BDT_REQ_OES; j++) {
		struct oe_open *o;

		if (j >= r->noe)
			break;
		o = oe_of_call(r->oes[j], r->tid, r->ts);
		if (o) {
			__sync_fetch_and_or(&o->acked, BDT_OE_CALL_OUT);
			o->emitted = 1;
		}
	}
}

/* At an IOERR of the DIRECT extent at key (ref: where it is kept): marked
 * failed, then its entry, when it holds a write whose records were not
 * emitted, claimed for this emission (the acked_ioerr fact). A write that
 * returns later finds the mark (oe_call_end). */
static __always_inline struct oe_open *oe_acked_of(u64 key, const struct oe_ref *ref)
{
	u32 i = ref->i;
	struct oe_open *o;
	u64 old;

	if (!ref->k || *ref->k != key)
		return 0;
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (!o)
		return 0;
	old = __sync_fetch_and_or(&o->acked, BDT_OE_FAILED);
	if (!(old & BDT_OE_CALL) || (old & BDT_OE_CALL_OUT) ||
	    (__sync_fetch_and_or(&o->acked, BDT_OE_CALL_OUT) & BDT_OE_CALL_OUT))
		return 0;
	return o;
}

/* acked_ioerr fired for the extent o (claimed: oe_acked_of): its write's
 * begin, the oe_add records of the write's extents still in flight, and its
 * end (skip: its begin time, for the flush that follows not to emit it twice,
 * in flight or from the recent requests). */
static __always_inline void oe_emit_call(struct oe_open *o, u64 *skip)
{
	const struct dio_req *r = dw_req(&o->call);
	u32 tid = r->tid;
	u64 ts = r->ts;

	u64 added[BDT_REQ_OES] = {};

	skip[0] = ts;
	emit_req_begin(r);
#pragma unroll
	for (int j = 0; j < BDT_REQ_OES; j++) {
		struct oe_open *x;
		bool dup = false;

		if (j >= r->noe)
			break;
		x = oe_of_call(r->oes[j], tid, ts);
		if (!x)
			continue;
		__sync_fetch_and_or(&x->acked, BDT_OE_CALL_OUT);
		/* a split-off part has its extent's oe_add: once */
#pragma unroll
		for (int m = 0; m < j; m++)
			dup = dup || added[m] == x->add.ts;
		added[j] = x->add.ts;
		if (!x->emitted && !dup) {
			x->emitted = 1;
			oe_make_add(x);
		}
	}
	emit_req_end(r, o->call.end_ts, o->call.end_src, o->call.end_pos, o->call.ret,
		     o->call.error, 0);
}

struct oe_scan_ctx {
	u64 sb_dev;
	u64 before; /* added before this (the removed extent's add) */
	u64 now;
	u64 ts;     /* found: its add */
	u32 found;  /* found: its slot (~0u: none) */
	u32 pad;
};

static long oe_scan_cb(struct bpf_map *map, const u32 *i, struct oe_open *o, struct oe_scan_ctx *sc)
{
	u32 k = *i;
	u64 *key = bpf_map_lookup_elem(&oe_slot_key, &k), ts = o->add.ts;

	if (!key || !*key || (*key & 1) || o->fired || o->split || o->sb_dev != sc->sb_dev)
		return 0;
	if (ts >= sc->before || sc->now <= ts || sc->now - ts < stall_ns)
		return 0;
	if (sc->found == ~0u || ts < sc->ts) {
		sc->found = k;
		sc->ts = ts;
	}
	return 0;
}

/* At the removal of the DIRECT extent at `key` (ref: where it is kept; mine:
 * its entry, if kept): the oldest stuck extent on the filesystem, if it is
 * time to look (the oe_stall trigger's fact). h: the removal's record; its
 * time (h->ts 0: not read yet) is read here once the jiffies say the gate
 * may be open. */
static __always_inline struct oe_open *oe_stall_scan(u64 key, const struct oe_ref *ref,
						     u64 sb_dev, struct held_rec *h,
						     struct oe_open **mine)
{
	struct oe_scan_ctx sc = { .sb_dev = sb_dev, .found = ~0u };
	u32 i = ref->i, b = (u32)((sb_dev * 0x9E3779B97F4A7C15ull) >> 60);
	struct oe_scan_gate *at;
	u64 next, now, j, dj;
	struct oe_open *o;

	if (!ref->k || *ref->k != key)
		return 0;
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (!o)
		return 0;
	*mine = o;
	at = bpf_map_lookup_elem(&oe_scan_at, &b);
	if (!at)
		return 0;
	if (!h->ts) {
		if (bpf_jiffies64() < at->next_j)
			return 0;
		h->ts = bpf_ktime_get_ns();
	}
	now = h->ts;
	next = at->next;
	if (now < next ||
	    __sync_val_compare_and_swap(&at->next, next, now + BDT_STALL_SCAN_NS) != next)
		return 0;
	/* this removal opened it: the jiffies before which the next cannot open */
	j = bpf_jiffies64();
	dj = 0;
	if (at->last && now > at->last && now - at->last < 16 * BDT_STALL_SCAN_NS && j > at->last_j)
		dj = (j - at->last_j) * (BDT_STALL_SCAN_NS / 4 * 3) / (now - at->last);
	at->next_j = dj > 2 ? j + dj - 2 : 0;
	at->last = now;
	at->last_j = j;
	sc.now = now;
	sc.before = o->add.ts;
	bpf_for_each_map_elem(&oe_slot, oe_scan_cb, &sc, 0);
	if (sc.found == ~0u)
		return 0;
	return bpf_map_lookup_elem(&oe_slot, &sc.found);
}

/* The triggers of an ordered-extent event whose record the policy wants
 * (stalled_ino: oe_stall's fact, 0 but at a removal; rewrote: csum_direct's,
 * false but at a buffered oe_add; acked: acked_ioerr's, false but at an IOERR
 * of a DIRECT extent). */
static __always_inline u32 oe_fired(const struct held_rec *h, bool uptodate, u64 stalled_ino,
				    bool rewrote, bool acked)
{
	struct bdt_facts f = { .point = BDT_PT_OE, .type = h->type, .uptodate = uptodate,
			       .kflags = h->u.oe.kflags, .stalled_ino = stalled_ino,
			       .direct_written = rewrote, .acked_write = acked };

	if (!lazy)
		return 0;
	if (h->type == BDT_EV_OE_ADD && oe_buffered(f.kflags))
		f.user_task = user_task();
	return bdt_fired(&f);
}

/* The tracepoints pass the btrfs_inode: with btf, a BTF pointer (BDT_RD). */
static __always_inline int on_ordered(u64 *ctx, u16 type, bool btf)
{
	const struct btrfs_inode *bi = (void *)ctx[0];
	const struct btrfs_ordered_extent *oe = (void *)ctx[1];
	struct held_rec h = { .type = type, .src = BDT_SRC_TRACEPOINT };
	struct oe_open *stuck = 0, *mine = 0, *acked = 0;
	struct oe_ref where = { .i = ~0u };
	struct dio_req *held = 0;
	struct super_block *sb;
	struct ident id = {};
	u64 sb_dev, ino, okey = 0, held_key = 0, akey;
	bool emitted, rewrote = false;
	u32 fired;

	BDT_ARG_OR_RETURN(bi);
	BDT_ARG_OR_RETURN(oe);
	h.u.oe.kflags = BDT_RD(btf, oe, flags);
	/* a clean completion changes no detector's state */
	if (type == BDT_EV_OE_MARK_FINISHED && !all_events && oe_ioerr_bit < 64 &&
	    !oe_ioerr(h.u.oe.kflags))
		return 0;
	sb = BDT_RD(btf, bi, vfs_inode.i_sb);
	sb_dev = BDT_RD(btf, sb, s_dev);
	ino = BDT_RD(btf, bi, vfs_inode.i_ino);
	if (!inode_pass_k(sb_dev, ino))
		return 0;
	/* a lazy removal reads the clock only for a use of its time (h.ts 0 until
	 * then): the scan (oe_stall_scan), a trigger that fired, a record made or
	 * held (file_event_now_held); a clean one on a file nothing made hot
	 * needs none */
	if (!lazy || type != BDT_EV_OE_REMOVE)
		h.ts = bpf_ktime_get_ns();
	if (bpf_core_field_exists(oe->num_bytes)) {
		h.u.oe.file_offset = BDT_RD(btf, oe, file_offset);
		h.u.oe.len = BDT_RD(btf, oe, num_bytes);
	} else {
		h.u.oe.file_offset = BDT_RD(btf, (struct btrfs_ordered_extent___old *)oe, start);
		h.u.oe.len = BDT_RD(btf, (struct btrfs_ordered_extent___old *)oe, len);
	}
	if (bpf_core_field_exists(oe->disk_bytenr))
		h.u.oe.disk_bytenr = BDT_RD(btf, oe, disk_bytenr);
	h.u.oe.bytes_left = BDT_RD(btf, oe, bytes_left);
	/* testing aid (config.bpf.h): these inodes' DIRECT extents at offset 0 are removed failed */
	if (test_ioerr_ino && type == BDT_EV_OE_REMOVE && ino >= test_ioerr_ino &&
	    h.u.oe.file_offset == 0 && oe_direct(h.u.oe.kflags) && oe_ioerr_bit < 64)
		h.u.oe.kflags |= 1ull << (oe_ioerr_bit & 63);
	/* a buffered write of the range: its last write is no longer direct */
	if (type == BDT_EV_OE_ADD && oe_buffered(h.u.oe.kflags))
		rewrote = dw_buffered(sb_dev, ino, h.u.oe.file_offset,
				      h.u.oe.file_offset + h.u.oe.len);
	if (lat_hist_on && type == BDT_EV_OE_ADD && oe_buffered(h.u.oe.kflags)) {
		const struct btrfs_root *root = BDT_RD(btf, bi, root);

		count_qemu_buffered(BDT_RD(btf, root, anon_dev), ino, h.u.oe.len);
	}
	if (oe_track_on() && (type == BDT_EV_OE_ADD || type == BDT_EV_OE_REMOVE ||
			      type == BDT_EV_OE_MARK_FINISHED || type == BDT_EV_OE_SPLIT))
		okey = addr_num((u64)oe);
	/* the key it is kept by: its address, or its start for a split-off part;
	 * where: looked up once, for the three uses below */
	akey = okey;
	if (okey && oe_direct(h.u.oe.kflags) &&
	    (type == BDT_EV_OE_REMOVE || (type == BDT_EV_OE_MARK_FINISHED && acked_on()))) {
		where = oe_find_ref(okey);
		if (where.i == ~0u && acked_on()) {
			akey = oe_split_key(sb_dev, ino, h.u.oe.file_offset);
			where = oe_find_ref(akey);
		}
	}
	/* oe_stall: a DIRECT extent (kept by its address) removed while an older one is stuck */
	if (okey && type == BDT_EV_OE_REMOVE && oe_stall_on() && akey == okey)
		stuck = oe_stall_scan(okey, &where, sb_dev, &h, &mine);
	/* acked_ioerr: a DIRECT extent of an acknowledged, unemitted write failed */
	if (okey && (type == BDT_EV_OE_REMOVE || type == BDT_EV_OE_MARK_FINISHED) && acked_on() &&
	    oe_ioerr(h.u.oe.kflags))
		acked = oe_acked_of(akey, &where);
	fired = oe_fired(&h, false, stuck ? stuck->ino : 0, rewrote, acked != 0);
	if (fired && !h.ts)
		h.ts = bpf_ktime_get_ns();
	if (acked && (fired & (1u << BDT_TRIG_ACKED_IOERR))) {
		struct flush_ctx fc = { .sb_dev = sb_dev, .ino = ino };

		oe_emit_call(acked, fc.skip);
		/* the file's other requests, and hot: its removals follow */
		flush_inode_ctx(&fc, h.ts);
	}
	if (stuck && (fired & (1u << BDT_TRIG_OE_STALL))) {
		stuck->fired = 1;
		flush_inode(stuck->sb_dev, stuck->ino, stuck->add.ts, h.ts);
		oe_emit_add(stuck, h.ts);
	}
	/* fired: this file is flushed too (its requests of the last recent_ns) */
	emitted = file_event_now_held(sb_dev, ino, &h, fired, &held, &held_key);
	if (emitted) {
		btrfs_ident_rd(&id, bi, btf);
		file_event_make(&id, &h);
	}
	if (mine && stuck && (fired & (1u << BDT_TRIG_OE_STALL)))
		oe_emit_add(mine, h.ts);
	if (okey && type == BDT_EV_OE_ADD && oe_direct(h.u.oe.kflags)) {
		u64 held_by = 0;
		u32 slot;

		/* held with this thread's request (file_event_now_held): out when it
		 * is; emitted already when holding it made the request emit */
		if (held && held->emitted)
			emitted = true;
		else if (held)
			held_by = held_key;
		slot = oe_track_add(okey, &h, sb_dev, ino, addr_num((u64)bi), emitted, held_by, 0, btf);
		if (slot != ~0u && held_by && held) {
			u32 n = held->noe;

			/* the request's extents: its write is kept with them (oe_call_end) */
			if (n < BDT_REQ_OES) {
				held->oes[n] = (u16)slot;
				held->noe = n + 1;
			}
		}
	} else if (okey && type == BDT_EV_OE_SPLIT && oe_direct(h.u.oe.kflags) && !emitted &&
		   acked_on()) {
		/* the part split off its front (the extent's start before the split) */
		oe_track_split(okey, sb_dev, ino, h.u.oe.file_offset, held, held_key, btf);
	} else if (okey && type == BDT_EV_OE_REMOVE && oe_direct(h.u.oe.kflags)) {
		oe_track_remove(akey, &where);
	}
	return 0;
}

static __always_inline int on_finish_ordered(u64 *ctx, bool btf)
{
	const struct btrfs_inode *bi = (void *)ctx[0];
	struct held_rec h = { .type = BDT_EV_OE_FINISH, .src = BDT_SRC_TRACEPOINT };
	struct super_block *sb;
	struct ident id = {};
	bool uptodate = (u8)ctx[3];
	u64 sb_dev, ino;

	BDT_ARG_OR_RETURN(bi);
	if (uptodate && !all_events) /* uptodate: changes no detector's state */
		return 0;
	sb = BDT_RD(btf, bi, vfs_inode.i_sb);
	sb_dev = BDT_RD(btf, sb, s_dev);
	ino = BDT_RD(btf, bi, vfs_inode.i_ino);
	if (!inode_pass_k(sb_dev, ino))
		return 0;
	h.ts = bpf_ktime_get_ns();
	h.u.oe.file_offset = ctx[1];
	h.u.oe.len = ctx[2];
	if (uptodate)
		h.flags |= BDT_F_UPTODATE;
	if (file_event_now(sb_dev, ino, &h, oe_fired(&h, uptodate, 0, false, false))) {
		btrfs_ident_rd(&id, bi, btf);
		file_event_make(&id, &h);
	}
	return 0;
}

/* ---- btrfs_finish_ordered_io (where btrfs_finish_ordered_extent is missing) ------ */
static __always_inline int fn_oe_finish_enter(void *ctx, u64 *a, u8 src)
{
	const struct btrfs_ordered_extent *oe = (void *)a[0];
	void *ip = BPF_CORE_READ(oe, inode);
	const struct btrfs_inode *bi = oe_inode_is_btrfs ? ip : btrfs_i(ip);
	struct held_rec h = { .type = BDT_EV_OE_FINISH, .src = src };
	struct ident id = {};
	u64 kflags = BPF_CORE_READ(oe, flags);

	/* finished cleanly: changes no detector's state (see all_events) */
	if (!all_events && oe_ioerr_bit < 64 && !oe_ioerr(kflags))
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	h.ts = bpf_ktime_get_ns();
	h.u.oe.file_offset = BPF_CORE_READ(oe, file_offset);
	h.u.oe.len = BPF_CORE_READ(oe, num_bytes);
	h.u.oe.disk_bytenr = BPF_CORE_READ(oe, disk_bytenr);
	h.u.oe.bytes_left = BPF_CORE_READ(oe, bytes_left);
	h.u.oe.kflags = kflags;
	if (!oe_ioerr(kflags))
		h.flags |= BDT_F_UPTODATE;
	file_event(&id, &h, oe_fired(&h, !oe_ioerr(kflags), 0, false, false));
	return 0;
}

#endif /* BDT_ORDERED_BPF_H */
