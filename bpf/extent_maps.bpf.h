/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: extent maps. btrfs_get_extent (tracepoint, or
 * function hook with enter/exit and errors), btrfs_handle_em_exist and
 * add_extent_mapping / btrfs_add_extent_mapping's return.
 */
#ifndef BDT_EXTENT_MAPS_BPF_H
#define BDT_EXTENT_MAPS_BPF_H

/*
 * Which tree is this extent map in? Walk up the rb-tree parents to the root
 * node and return the root's address; 0 if the walk does not end (bounded:
 * 2*log2(n+1) levels cover 2^24 maps).
 */
#define BDT_RB_MAX_DEPTH 48
static __always_inline u64 em_root_node(const struct extent_map *em)
{
	const struct rb_node *node = &em->rb_node;

#pragma unroll
	for (int i = 0; i < BDT_RB_MAX_DEPTH; i++) {
		unsigned long pc = BPF_CORE_READ(node, __rb_parent_color);
		const struct rb_node *parent = (const struct rb_node *)(pc & ~3UL);

		if (!parent)
			return (u64)node;
		node = parent;
	}
	return 0;
}

static __always_inline int on_get_extent(u64 *ctx)
{
	const struct btrfs_inode *bi = (void *)ctx[1];
	const struct extent_map *em = (void *)ctx[2];
	struct bdt_raw_event *e;
	struct ident id = {};
	bool wanted = all_events;

	BDT_ARG_OR_RETURN(bi);
	BDT_ARG_OR_RETURN(em);
	if (!wanted && em_exist_flagged) {
		struct cur_req *cur = cur_req_get(false);

		if (cur && cur->em_exist_seen && cur_request(cur)) {
			em_exist_clear(cur);
			wanted = true;
		}
	}
	if (!wanted && !task_filtered())
		return 0;
	btrfs_ident(&id, bi);
	if (!fs_pass(id.sb_dev) || !task_pass())
		return 0;
	touch_inode(&id);
	if (!wanted)
		return 0;
	e = reserve(BDT_EV_GET_EXTENT);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->phase = BDT_PHASE_EXIT;
	/* The tracepoint fires with the resulting map only; the requested range is unknown. */
	e->u.ext.em_start = BPF_CORE_READ(em, start);
	e->u.ext.em_len = BPF_CORE_READ(em, len);
	e->u.ext.start = e->u.ext.em_start;
	e->u.ext.len = e->u.ext.em_len;
	e->u.ext.block_start = em_block_start(em);
	e->u.ext.em_flags = em_flags(em);
	bdt_submit(e);
	return 0;
}

static __always_inline int on_em_exist(u64 *ctx)
{
	struct btrfs_fs_info *fs_info = (void *)ctx[0];
	const struct extent_map *existing = (void *)ctx[1];
	const struct extent_map *map = (void *)ctx[2];
	struct bdt_facts f = { .point = BDT_PT_EM_EXIST };
	struct dio_req *r = 0, *mine;
	u64 sb_dev;
	struct cur_req *cur;
	struct bdt_raw_event *e;
	u64 root_node = 0, tree_root_node = 0;

	BDT_ARG_OR_RETURN(fs_info);
	BDT_ARG_OR_RETURN(existing);
	BDT_ARG_OR_RETURN(map);
	sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	if (!fs_pass(sb_dev) || !task_pass())
		return 0;
	cur = cur_req_get(false);
	mine = cur_request(cur);
	if (mine) {
		/* the enclosing get_extent's record is wanted */
		if (!cur->em_exist_seen) {
			cur->em_exist_seen = 1;
			__sync_fetch_and_add(&em_exist_flagged, 1);
		}
		if (cur->sb_dev == sb_dev) {
			/* Attribute to this thread's DIO inode only if the existing map is in its tree. */
			root_node = em_root_node(existing);
			bpf_probe_read_kernel(&tree_root_node, sizeof(tree_root_node),
					      (void *)cur->tree_root);
			if (root_node && root_node == tree_root_node)
				r = mine;
		}
	}
	/* the trigger: emit this request and the others on its inode (not attributed: nothing held) */
	if (r && bdt_fired(&f)) {
		flush_request(r);
		flush_inode(r->id.sb_dev, r->id.ino, r->ts, bpf_ktime_get_ns());
	}
	e = reserve(BDT_EV_EM_EXIST);
	if (!e)
		return 0;
	fill_task(e);
	if (r) {
		put_ident(e, &r->id);
	} else {
		read_fsid(e->fsid, fs_info);
		e->sb_dev = sb_dev;
	}
	e->u.emx.e_start = BPF_CORE_READ(existing, start);
	e->u.emx.e_len = BPF_CORE_READ(existing, len);
	e->u.emx.map_start = BPF_CORE_READ(map, start);
	e->u.emx.map_len = BPF_CORE_READ(map, len);
	e->u.emx.start = ctx[3];
	e->u.emx.len = ctx[4];
	bdt_submit(e);
	return 0;
}

/* ---- btrfs_get_extent ---------------------------------------------------------- */
static __always_inline int fn_get_extent(void *ctx, u64 *a, s64 ret, u8 src, bool exit)
{
	const struct btrfs_inode *bi = (void *)a[0];
	struct held_rec h = { .type = BDT_EV_GET_EXTENT, .src = src };
	struct bdt_facts f = { .point = BDT_PT_EXTENT_RET, .ret = ret };
	struct ident id = {};

	btrfs_ident(&id, bi);
	if (!fs_pass(id.sb_dev) || !task_pass())
		return 0;
	touch_inode(&id);
	h.ts = bpf_ktime_get_ns();
	h.phase = exit ? BDT_PHASE_EXIT : BDT_PHASE_ENTER;
	h.u.ext.start = ge_folio_args ? a[2] : a[3];
	h.u.ext.len = ge_folio_args ? a[3] : a[4];
	if (exit) {
		if (is_err_value(ret)) {
			h.u.ext.ret = ret;
			h.flags |= BDT_F_ERR_PTR;
			if ((ret == -5 || ret == -17) && in_traced_dio())
				h.stack_id = stack_of(ctx);
		} else {
			const struct extent_map *em = (void *)ret;

			f.ret = 0;
			h.u.ext.em_start = BPF_CORE_READ(em, start);
			h.u.ext.em_len = BPF_CORE_READ(em, len);
			h.u.ext.block_start = em_block_start(em);
			h.u.ext.em_flags = em_flags(em);
		}
	}
	file_event(&id, &h, lazy && exit ? bdt_fired(&f) : 0);
	return 0;
}

static __always_inline int fn_get_extent_enter(void *ctx, u64 *a, u8 src)
{
	return fn_get_extent(ctx, a, 0, src, false);
}

static __always_inline int fn_get_extent_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_get_extent(ctx, a, ret, src, true);
}

/* ---- add_extent_mapping / btrfs_add_extent_mapping (return) --------------------- */
static __always_inline int fn_em_add_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	struct held_rec h = { .type = BDT_EV_EM_ADD, .src = src };
	struct bdt_facts f = { .point = BDT_PT_EXTENT_RET };
	const struct btrfs_inode *bi;
	const struct extent_map *em = 0;
	struct ident id = {};
	struct super_block *sb;

	if (em_add_layout == 0 || em_add_layout == 2) {
		u64 tree = em_add_layout == 0 ? a[0] : a[1];

		bi = (void *)(tree - bpf_core_field_offset(struct btrfs_inode, extent_tree));
	} else {
		bi = (void *)a[0];
	}
	if (em_add_layout == 0 || em_add_layout == 1)
		em = (void *)a[1];
	else
		bpf_probe_read_kernel(&em, sizeof(em), (void *)(em_add_layout == 2 ? a[2] : a[1]));
	/* 6.1's add_extent_mapping also serves the chunk map tree: only inode trees count */
	sb = BPF_CORE_READ(bi, vfs_inode.i_sb);
	if (!is_btrfs_sb(sb, false) || BPF_CORE_READ(bi, root, fs_info, sb) != sb || !em)
		return 0;
	btrfs_ident(&id, bi);
	if (!fs_pass(id.sb_dev) || !task_pass())
		return 0;
	h.ts = bpf_ktime_get_ns();
	h.u.ext.start = BPF_CORE_READ(em, start);
	h.u.ext.len = BPF_CORE_READ(em, len);
	h.u.ext.em_start = h.u.ext.start;
	h.u.ext.em_len = h.u.ext.len;
	h.u.ext.block_start = em_block_start(em);
	h.u.ext.em_flags = em_flags(em);
	h.u.ext.ret = (s32)ret;
	if (((s32)ret == -17 || (s32)ret == -5) && in_traced_dio())
		h.stack_id = stack_of(ctx);
	f.ret = (s32)ret;
	file_event(&id, &h, lazy ? bdt_fired(&f) : 0);
	return 0;
}

#endif /* BDT_EXTENT_MAPS_BPF_H */
