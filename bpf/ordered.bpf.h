/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: ordered extents. The btrfs_ordered_extent_* tracepoints,
 * btrfs_finish_ordered_extent, and btrfs_finish_ordered_io where that
 * tracepoint is missing. They run in btrfs workers: filtered by inode; with
 * lazy emission those a DIO request's thread makes are held with it, and the
 * DIRECT ones in flight are kept for the oe_stall trigger (below).
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

/* ---- DIRECT ordered extents in flight: the oe_stall trigger ------------------ */
/*
 * dio-stuck's second rule: a DIRECT ordered extent still open past the stall
 * threshold while later ones on the same filesystem are removed. Its request
 * may have completed cleanly (no record), so every DIRECT ordered extent in
 * flight is kept in a direct-mapped table by its address (oe_slot; one whose
 * slot is taken is not kept): its oe_add record and its writer. At the
 * removal of one, at most once per second per filesystem (oe_scan_at, 16
 * buckets by superblock), the table is scanned for the oldest extent on that
 * filesystem that was added before it, is open past stall_ns and has not
 * fired yet. Found: oe_stall fires; the stuck extent's oe_add is emitted and
 * its file flushed (hot: its removal will be emitted too), and the removed
 * extent's oe_add and oe_remove are emitted: the later completion that tells
 * a hang from a slow device (a slow device holds the later extents too).
 */
#define BDT_OE_SLOT_BITS 11
#define BDT_OE_SLOTS (1u << BDT_OE_SLOT_BITS)
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
	u8 pad[6];
};

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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_OE_SCAN_BUCKETS);
	__type(key, u32);
	__type(value, u64);
} oe_scan_at SEC(".maps");

static __always_inline bool oe_stall_on(void)
{
	return lazy && (trigger_mask & (1u << BDT_TRIG_OE_STALL));
}

static __always_inline bool oe_direct(u64 kflags)
{
	return oe_direct_bit < 64 && ((kflags >> (oe_direct_bit & 63)) & 1);
}

static __always_inline u32 oe_slot_of(u64 oe)
{
	return (u32)((oe * 0x9E3779B97F4A7C15ull) >> (64 - BDT_OE_SLOT_BITS));
}

/* A DIRECT ordered extent was added (h: its record, emitted or not; held_by:
 * the request of this thread that holds it, 0: none). */
static __always_inline void oe_track_add(u64 key, const struct held_rec *h, u64 sb_dev, u64 ino,
					 u64 bi, bool emitted, u64 held_by)
{
	u32 i = oe_slot_of(key);
	u64 *k = bpf_map_lookup_elem(&oe_slot_key, &i), t;
	struct oe_open *o;

	if (!k || __sync_val_compare_and_swap(k, 0, key | 1) != 0)
		return;
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (!o) {
		__sync_lock_test_and_set(k, 0);
		return;
	}
	o->sb_dev = sb_dev;
	o->ino = ino;
	o->bi = bi;
	t = bpf_get_current_pid_tgid();
	o->pid = t >> 32;
	o->tid = (u32)t;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	__builtin_memcpy(&o->add, h, sizeof(*h));
	o->emitted = emitted;
	o->held_by = held_by;
	o->fired = 0;
	__sync_lock_test_and_set(k, key); /* filled */
}

/* The extent at `key` is gone: its slot is free again. */
static __always_inline void oe_track_remove(u64 key)
{
	u32 i = oe_slot_of(key);
	u64 *k = bpf_map_lookup_elem(&oe_slot_key, &i);

	if (k && *k == key)
		__sync_val_compare_and_swap(k, key, 0);
}

/* Its oe_add record, once, with its writer; called after its file was
 * flushed: a record held by a request in flight went out with it, one held by
 * a request that ended within recent_ns went out with the recent ones. */
static __always_inline void oe_emit_add(struct oe_open *o, u64 now)
{
	struct bdt_raw_event *e;
	struct ident id = {};

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

	if (!key || !*key || (*key & 1) || o->fired || o->sb_dev != sc->sb_dev)
		return 0;
	if (ts >= sc->before || sc->now <= ts || sc->now - ts < stall_ns)
		return 0;
	if (sc->found == ~0u || ts < sc->ts) {
		sc->found = k;
		sc->ts = ts;
	}
	return 0;
}

/* At the removal of the DIRECT extent at `key` (mine: its entry, if kept): the
 * oldest stuck extent on the filesystem, if it is time to look (the oe_stall
 * trigger's fact). */
static __always_inline struct oe_open *oe_stall_scan(u64 key, u64 sb_dev, u64 now,
						     struct oe_open **mine)
{
	struct oe_scan_ctx sc = { .sb_dev = sb_dev, .now = now, .found = ~0u };
	u32 i = oe_slot_of(key), b = (u32)((sb_dev * 0x9E3779B97F4A7C15ull) >> 60);
	u64 *k = bpf_map_lookup_elem(&oe_slot_key, &i), *at, next;
	struct oe_open *o;

	if (!k || *k != key)
		return 0;
	o = bpf_map_lookup_elem(&oe_slot, &i);
	if (!o)
		return 0;
	*mine = o;
	at = bpf_map_lookup_elem(&oe_scan_at, &b);
	if (!at)
		return 0;
	next = *at;
	if (now < next || __sync_val_compare_and_swap(at, next, now + BDT_STALL_SCAN_NS) != next)
		return 0;
	sc.before = o->add.ts;
	bpf_for_each_map_elem(&oe_slot, oe_scan_cb, &sc, 0);
	if (sc.found == ~0u)
		return 0;
	return bpf_map_lookup_elem(&oe_slot, &sc.found);
}

/* The triggers of an ordered-extent event whose record the policy wants
 * (stalled_ino: oe_stall's fact, 0 but at a removal; rewrote: csum_direct's,
 * false but at a buffered oe_add). */
static __always_inline u32 oe_fired(const struct held_rec *h, bool uptodate, u64 stalled_ino,
				    bool rewrote)
{
	struct bdt_facts f = { .point = BDT_PT_OE, .type = h->type, .uptodate = uptodate,
			       .kflags = h->u.oe.kflags, .stalled_ino = stalled_ino,
			       .direct_written = rewrote };

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
	struct oe_open *stuck = 0, *mine = 0;
	struct super_block *sb;
	struct ident id = {};
	u64 sb_dev, ino, okey = 0;
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
	/* a buffered write of the range: its last write is no longer direct */
	if (type == BDT_EV_OE_ADD && oe_buffered(h.u.oe.kflags))
		rewrote = dw_buffered(sb_dev, ino, h.u.oe.file_offset,
				      h.u.oe.file_offset + h.u.oe.len);
	if (lat_hist_on && type == BDT_EV_OE_ADD && oe_buffered(h.u.oe.kflags)) {
		const struct btrfs_root *root = BDT_RD(btf, bi, root);

		count_qemu_buffered(BDT_RD(btf, root, anon_dev), ino, h.u.oe.len);
	}
	if (oe_stall_on() && (type == BDT_EV_OE_ADD || type == BDT_EV_OE_REMOVE))
		okey = addr_num((u64)oe);
	/* oe_stall: a DIRECT extent removed while an older one is stuck */
	if (okey && type == BDT_EV_OE_REMOVE)
		stuck = oe_stall_scan(okey, sb_dev, h.ts, &mine);
	fired = oe_fired(&h, false, stuck ? stuck->ino : 0, rewrote);
	if (stuck && (fired & (1u << BDT_TRIG_OE_STALL))) {
		stuck->fired = 1;
		flush_inode(stuck->sb_dev, stuck->ino, stuck->add.ts, h.ts);
		oe_emit_add(stuck, h.ts);
	}
	/* fired: this file is flushed too (its requests of the last recent_ns) */
	emitted = file_event_now(sb_dev, ino, &h, fired);
	if (emitted) {
		btrfs_ident_rd(&id, bi, btf);
		file_event_make(&id, &h);
	}
	if (mine && stuck && (fired & (1u << BDT_TRIG_OE_STALL)))
		oe_emit_add(mine, h.ts);
	if (okey && type == BDT_EV_OE_ADD && oe_direct(h.u.oe.kflags)) {
		struct cur_req *c = cur_req_get(false);
		u64 held_by = 0;

		/* held with this thread's request (file_event_now): out when it is */
		if (!emitted && c && c->kiocb && c->sb_dev == sb_dev && c->ino == ino) {
			struct dio_req *r = req_lookup(c->kiocb);

			if (r && r->emitted)
				emitted = true;
			else if (r)
				held_by = c->kiocb;
		}
		oe_track_add(okey, &h, sb_dev, ino, addr_num((u64)bi), emitted, held_by);
	} else if (okey && type == BDT_EV_OE_REMOVE) {
		oe_track_remove(okey);
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
	if (file_event_now(sb_dev, ino, &h, oe_fired(&h, uptodate, 0, false))) {
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
	file_event(&id, &h, oe_fired(&h, !oe_ioerr(kflags), 0, false));
	return 0;
}

#endif /* BDT_ORDERED_BPF_H */
