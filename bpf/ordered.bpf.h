/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: ordered extents. The btrfs_ordered_extent_* tracepoints,
 * btrfs_finish_ordered_extent, and btrfs_finish_ordered_io where that
 * tracepoint is missing. They run in btrfs workers: filtered by inode; with
 * lazy emission those a DIO request's thread makes are held with it.
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

/* The triggers of an ordered-extent event whose record the policy wants. */
static __always_inline u32 oe_fired(const struct held_rec *h, bool uptodate)
{
	struct bdt_facts f = { .point = BDT_PT_OE, .type = h->type, .uptodate = uptodate,
			       .kflags = h->u.oe.kflags };

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
	struct super_block *sb;
	struct ident id = {};
	u64 sb_dev, ino;

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
	if (lat_hist_on && type == BDT_EV_OE_ADD && oe_buffered(h.u.oe.kflags)) {
		const struct btrfs_root *root = BDT_RD(btf, bi, root);

		count_qemu_buffered(BDT_RD(btf, root, anon_dev), ino, h.u.oe.len);
	}
	if (file_event_now(sb_dev, ino, &h, oe_fired(&h, false))) {
		btrfs_ident_rd(&id, bi, btf);
		file_event_make(&id, &h);
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
	if (file_event_now(sb_dev, ino, &h, oe_fired(&h, uptodate))) {
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
	file_event(&id, &h, oe_fired(&h, !oe_ioerr(kflags)));
	return 0;
}

#endif /* BDT_ORDERED_BPF_H */
