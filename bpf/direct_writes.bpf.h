/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: the last direct writes of checksummed files, for the
 * csum_direct trigger (triggers.bpf.h) of dio-csum-after-direct-write.
 *
 * With lazy emission a direct write that completes cleanly makes no record,
 * but a checksum failure on its range, maybe minutes later, is a violation
 * only if the detector knows that write; and a buffered rewrite of the range
 * (an ordered extent without DIRECT, made by writeback) makes no record
 * either, yet it is what makes a later failure no violation. So, per inode
 * (last_dw, an LRU hash of BDT_LAST_DW_FILES files), the last BDT_LAST_DW
 * acknowledged direct writes are kept: the request's begin fields (the head
 * of struct dio_req), its end, and whether it was emitted. Only writes to
 * files with data checksums: on kernels where those fall back to buffered
 * I/O (6.14+ and stable backports) nothing reaches iomap_dio_rw_begin and
 * nothing is kept; nocow files add nothing. A later direct write of an
 * overlapping range forgets the older one (the whole write: a failure on its
 * untouched part is then not judged). csum_direct fires
 *   - at a checksum failure on the inode: its remembered writes that were
 *     not emitted are emitted (begin and end, their own timestamps) before
 *     the csum_error record, and all are forgotten;
 *   - at a buffered ordered extent over a remembered write: the ordered
 *     extent's record is emitted (the detector forgets the write), and the
 *     write is forgotten.
 */
#ifndef BDT_DIRECT_WRITES_BPF_H
#define BDT_DIRECT_WRITES_BPF_H

#define BDT_LAST_DW 4
#define BDT_LAST_DW_FILES 512
#define BDT_DW_HEAD __builtin_offsetof(struct dio_req, held)

_Static_assert(BDT_DW_HEAD % 8 == 0, "the head of struct dio_req is 8-byte aligned");
_Static_assert(BDT_LAST_DW == BDT_FLUSH_SKIP, "a flush skips every write dw_emit emitted");

struct dw_rec {
	u64 req[BDT_DW_HEAD / 8]; /* struct dio_req up to its held records */
	u64 end_ts;
	u64 end_pos;
	s64 ret;
	s32 error;
	u8 end_src;
	u8 valid;
	u8 emitted; /* its records were emitted when it completed */
	u8 pad;
};

struct last_dw {
	u64 next; /* the slot the next remembered write takes */
	struct dw_rec w[BDT_LAST_DW];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BDT_LAST_DW_FILES);
	__type(key, struct inode_key);
	__type(value, struct last_dw);
} last_dw SEC(".maps");

/* All zeros, never written: a new last_dw entry (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct last_dw);
} last_dw_zero SEC(".maps");

/* Set once the first write is remembered: no lookup in last_dw before. */
bool last_dw_used = false;

static __always_inline bool dw_on(void)
{
	return lazy && (trigger_mask & (1u << BDT_TRIG_CSUM_DIRECT));
}

static __always_inline const struct dio_req *dw_req(const struct dw_rec *w)
{
	return (const struct dio_req *)w->req;
}

/* Forget the remembered writes that overlap [lo, hi): whether one was. */
static __always_inline bool dw_cut(struct last_dw *d, u64 lo, u64 hi)
{
	bool cut = false;

#pragma unroll
	for (int i = 0; i < BDT_LAST_DW; i++) {
		struct dw_rec *w = &d->w[i];
		const struct dio_req *r = dw_req(w);

		if (w->valid && r->pos < hi && lo < r->pos + r->count) {
			w->valid = 0;
			cut = true;
		}
	}
	return cut;
}

/*
 * A direct write completed (on_dio_complete). remember: it acknowledged bytes
 * (emitted: its records were emitted); otherwise (failed) it only forgets
 * what it overwrote.
 */
static __always_inline void dw_complete(const struct dio_req *r, bool remember, bool emitted,
					u64 now, u64 pos, s64 ret, s32 error, u8 src)
{
	struct inode_key k = { .sb_dev = r->id.sb_dev, .ino = r->id.ino };
	struct last_dw *d;
	struct dw_rec *w;
	u32 zero = 0, i;

	if (!dw_on() || !(r->flags & BDT_F_WRITE) || (r->begin_flags & BDT_F_NODATASUM))
		return;
	if (!remember && !last_dw_used)
		return;
	d = bpf_map_lookup_elem(&last_dw, &k);
	if (!d) {
		const struct last_dw *z;

		if (!remember)
			return;
		z = bpf_map_lookup_elem(&last_dw_zero, &zero);
		if (!z)
			return;
		bpf_map_update_elem(&last_dw, &k, z, BPF_NOEXIST);
		d = bpf_map_lookup_elem(&last_dw, &k);
		if (!d)
			return;
		if (!last_dw_used)
			last_dw_used = true;
	}
	dw_cut(d, r->pos, r->pos + r->count);
	if (!remember)
		return;
	i = (u32)(__sync_fetch_and_add(&d->next, 1) % BDT_LAST_DW);
	w = &d->w[i & (BDT_LAST_DW - 1)];
	w->valid = 0;
	__builtin_memcpy(w->req, r, BDT_DW_HEAD);
	w->end_ts = now;
	w->end_pos = pos;
	w->ret = ret;
	w->error = error;
	w->end_src = src;
	w->emitted = emitted;
	w->valid = 1;
}

/* A buffered ordered extent [lo, hi) of the file: it rewrites the range.
 * Whether it rewrote a remembered direct write (the csum_direct fact). */
static __always_inline bool dw_buffered(u64 sb_dev, u64 ino, u64 lo, u64 hi)
{
	struct inode_key k = { .sb_dev = sb_dev, .ino = ino };
	struct last_dw *d;

	if (!dw_on() || !last_dw_used)
		return false;
	d = bpf_map_lookup_elem(&last_dw, &k);
	return d && dw_cut(d, lo, hi);
}

/* The inode's remembered writes, if any (the csum_direct fact). */
static __always_inline struct last_dw *dw_of(u64 sb_dev, u64 ino)
{
	struct inode_key k = { .sb_dev = sb_dev, .ino = ino };

	if (!dw_on() || !last_dw_used)
		return 0;
	return bpf_map_lookup_elem(&last_dw, &k);
}

/* csum_direct fired: emit the inode's remembered writes and forget them.
 * skip (struct flush_ctx): their begin times, for the flush that follows not
 * to emit a write twice that is also among the recent requests. */
static __always_inline void dw_emit(u64 sb_dev, u64 ino, struct last_dw *d, u64 *skip)
{
	struct inode_key k = { .sb_dev = sb_dev, .ino = ino };

#pragma unroll
	for (int i = 0; i < BDT_LAST_DW; i++) {
		struct dw_rec *w = &d->w[i];
		const struct dio_req *r = dw_req(w);

		if (!w->valid)
			continue;
		w->valid = 0;
		if (w->emitted)
			continue;
		skip[i] = r->ts;
		emit_req_begin(r);
		emit_req_end(r, w->end_ts, w->end_src, w->end_pos, w->ret, w->error, 0);
	}
	bpf_map_delete_elem(&last_dw, &k);
}

#endif /* BDT_DIRECT_WRITES_BPF_H */
