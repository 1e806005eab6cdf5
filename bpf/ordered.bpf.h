/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: ordered extents. The btrfs_ordered_extent_* tracepoints,
 * btrfs_finish_ordered_extent, and btrfs_finish_ordered_io where that
 * tracepoint is missing. They run in btrfs workers: filtered by inode.
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

static __always_inline int on_ordered(u64 *ctx, u16 type)
{
	const struct btrfs_inode *bi = (void *)ctx[0];
	const struct btrfs_ordered_extent *oe = (void *)ctx[1];
	struct bdt_raw_event *e;
	struct ident id = {};

	BDT_ARG_OR_RETURN(bi);
	BDT_ARG_OR_RETURN(oe);
	/* a clean completion changes no detector's state */
	if (type == BDT_EV_OE_MARK_FINISHED && !all_events && oe_ioerr_bit < 64 &&
	    !oe_ioerr(BPF_CORE_READ(oe, flags)))
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	if (lat_hist_on && type == BDT_EV_OE_ADD && oe_buffered(BPF_CORE_READ(oe, flags)))
		count_qemu_buffered(id.dev, id.ino, bpf_core_field_exists(oe->num_bytes) ?
			BPF_CORE_READ(oe, num_bytes) :
			BPF_CORE_READ((struct btrfs_ordered_extent___old *)oe, len));
	e = reserve(type);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	if (bpf_core_field_exists(oe->num_bytes)) {
		e->u.oe.file_offset = BPF_CORE_READ(oe, file_offset);
		e->u.oe.len = BPF_CORE_READ(oe, num_bytes);
	} else {
		e->u.oe.file_offset = BPF_CORE_READ((struct btrfs_ordered_extent___old *)oe, start);
		e->u.oe.len = BPF_CORE_READ((struct btrfs_ordered_extent___old *)oe, len);
	}
	if (bpf_core_field_exists(oe->disk_bytenr))
		e->u.oe.disk_bytenr = BPF_CORE_READ(oe, disk_bytenr);
	e->u.oe.bytes_left = BPF_CORE_READ(oe, bytes_left);
	e->u.oe.kflags = BPF_CORE_READ(oe, flags);
	bdt_submit(e);
	return 0;
}

static __always_inline int on_finish_ordered(u64 *ctx)
{
	const struct btrfs_inode *bi = (void *)ctx[0];
	struct bdt_raw_event *e;
	struct ident id = {};

	BDT_ARG_OR_RETURN(bi);
	if ((u8)ctx[3] && !all_events) /* uptodate: changes no detector's state */
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	e = reserve(BDT_EV_OE_FINISH);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.oe.file_offset = ctx[1];
	e->u.oe.len = ctx[2];
	if ((u8)ctx[3])
		e->flags |= BDT_F_UPTODATE;
	bdt_submit(e);
	return 0;
}

/* ---- btrfs_finish_ordered_io (where btrfs_finish_ordered_extent is missing) ------ */
static __always_inline int fn_oe_finish_enter(void *ctx, u64 *a, u8 src)
{
	const struct btrfs_ordered_extent *oe = (void *)a[0];
	void *ip = BPF_CORE_READ(oe, inode);
	const struct btrfs_inode *bi = oe_inode_is_btrfs ? ip : btrfs_i(ip);
	struct bdt_raw_event *e;
	struct ident id = {};
	u64 kflags = BPF_CORE_READ(oe, flags);

	/* finished cleanly: changes no detector's state (see all_events) */
	if (!all_events && oe_ioerr_bit < 64 && !oe_ioerr(kflags))
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	e = reserve_src(BDT_EV_OE_FINISH, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.oe.file_offset = BPF_CORE_READ(oe, file_offset);
	e->u.oe.len = BPF_CORE_READ(oe, num_bytes);
	e->u.oe.disk_bytenr = BPF_CORE_READ(oe, disk_bytenr);
	e->u.oe.bytes_left = BPF_CORE_READ(oe, bytes_left);
	e->u.oe.kflags = kflags;
	if (!oe_ioerr(kflags))
		e->flags |= BDT_F_UPTODATE;
	bdt_submit(e);
	return 0;
}

#endif /* BDT_ORDERED_BPF_H */
