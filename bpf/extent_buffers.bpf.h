/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: extent buffers (function hooks only: no tracepoint
 * exists). free_extent_buffer, find_extent_buffer's return and
 * btrfs_release_extent_buffer_pages, by default only for STALE buffers.
 */
#ifndef BDT_EXTENT_BUFFERS_BPF_H
#define BDT_EXTENT_BUFFERS_BPF_H

/* The extent buffer this thread is freeing (enter emitted), for the exit half. */
struct eb_freeing {
	u8 fsid[BDT_FSID_LEN];
	u64 sb_dev;
	u64 start;
	u64 ptr;
	u64 bflags;
	s32 refs;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct eb_freeing);
} eb_free_tid SEC(".maps");

static __always_inline bool eb_wanted(u64 bflags)
{
	if (eb_all)
		return true;
	return eb_stale_bit < 64 && ((bflags >> (eb_stale_bit & 63)) & 1);
}

static __always_inline int eb_emit(struct extent_buffer *eb, u16 type, u8 phase, u8 src,
				   bool filter_stale)
{
	struct btrfs_fs_info *fs_info;
	struct bdt_raw_event *e;
	u64 bflags, sb_dev;

	if (!eb)
		return 0;
	bflags = BPF_CORE_READ(eb, bflags);
	if (filter_stale && !eb_wanted(bflags))
		return 0;
	fs_info = BPF_CORE_READ(eb, fs_info);
	sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	if (!fs_pass(sb_dev) || !task_pass())
		return 0;
	e = reserve_src(type, src);
	if (!e)
		return 0;
	fill_task(e);
	read_fsid(e->fsid, fs_info);
	e->sb_dev = sb_dev;
	e->phase = phase;
	e->u.eb.eb_start = BPF_CORE_READ(eb, start);
	e->u.eb.kbflags = bflags;
	e->u.eb.eb_ptr = (u64)eb;
	e->u.eb.refs = BPF_CORE_READ(eb, refs.counter);
	if (type == BDT_EV_EB_FREE && phase == BDT_PHASE_ENTER) {
		struct eb_freeing f = {};
		u32 tid = cur_tid();

		__builtin_memcpy(f.fsid, e->fsid, BDT_FSID_LEN);
		f.sb_dev = sb_dev;
		f.start = e->u.eb.eb_start;
		f.ptr = (u64)eb;
		f.bflags = bflags;
		f.refs = e->u.eb.refs;
		bpf_map_update_elem(&eb_free_tid, &tid, &f, BPF_ANY);
	}
	bdt_submit(e);
	return 0;
}

static __always_inline int fn_eb_free_enter(void *ctx, u64 *a, u8 src)
{
	return eb_emit((void *)a[0], BDT_EV_EB_FREE, BDT_PHASE_ENTER, src, true);
}

/* The buffer may be gone: report what the enter half saw (only if it was reported). */
static __always_inline int fn_eb_free_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	u32 tid = cur_tid();
	struct eb_freeing *f = bpf_map_lookup_elem(&eb_free_tid, &tid);
	struct bdt_raw_event *e;

	if (!f || f->ptr != a[0])
		return 0;
	e = reserve_src(BDT_EV_EB_FREE, src);
	if (e) {
		fill_task(e);
		__builtin_memcpy(e->fsid, f->fsid, BDT_FSID_LEN);
		e->sb_dev = f->sb_dev;
		e->phase = BDT_PHASE_EXIT;
		e->u.eb.eb_start = f->start;
		e->u.eb.eb_ptr = f->ptr;
		e->u.eb.kbflags = f->bflags;
		e->u.eb.refs = f->refs;
		bdt_submit(e);
	}
	bpf_map_delete_elem(&eb_free_tid, &tid);
	return 0;
}

static __always_inline int fn_eb_find_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return eb_emit((void *)ret, BDT_EV_EB_FIND, BDT_PHASE_EXIT, src, true);
}

static __always_inline int fn_eb_release_enter(void *ctx, u64 *a, u8 src)
{
	return eb_emit((void *)a[0], BDT_EV_EB_RELEASE, BDT_PHASE_NONE, src, false);
}

#endif /* BDT_EXTENT_BUFFERS_BPF_H */
