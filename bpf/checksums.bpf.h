/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: data checksum failures, from the return of
 * btrfs_check_data_csum (6.1) or btrfs_data_csum_ok (newer).
 */
#ifndef BDT_CHECKSUMS_BPF_H
#define BDT_CHECKSUMS_BPF_H

static __always_inline int fn_csum_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	const struct btrfs_inode *bi;
	struct btrfs_bio *bbio;
	struct bdt_raw_event *e;
	struct ident id = {};
	u32 bio_offset;

	if (csum_layout == 0) {
		if ((s32)ret == 0)
			return 0;
		bi = btrfs_i((void *)a[0]);
		bbio = (void *)a[1];
		bio_offset = (u32)a[2];
	} else {
		if ((u8)ret)
			return 0;
		bbio = (void *)a[0];
		bio_offset = (u32)a[2];
		if (!bpf_core_field_exists(bbio->inode))
			return 0;
		bi = BPF_CORE_READ(bbio, inode);
	}
	btrfs_ident(&id, bi);
	/* runs in end-io workers: filtered by inode, like ordered extents */
	if (!inode_pass(&id))
		return 0;
	if (lazy) {
		struct bdt_facts f = { .point = BDT_PT_CSUM };
		struct flush_ctx fc = { .sb_dev = id.sb_dev, .ino = id.ino };
		struct last_dw *d = dw_of(id.sb_dev, id.ino);
		u32 fired;

		f.direct_written = d != 0;
		fired = bdt_fired(&f);
		/* csum_direct: the file's last direct writes, remembered */
		if (d && (fired & (1u << BDT_TRIG_CSUM_DIRECT)))
			dw_emit(id.sb_dev, id.ino, d, fc.skip);
		/* csum: the file's requests of the last recent_ns, and hot */
		if (fired & (1u << BDT_TRIG_CSUM))
			flush_inode_ctx(&fc, bpf_ktime_get_ns());
	}
	e = reserve_src(BDT_EV_CSUM_ERROR, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.csum.offset = BPF_CORE_READ(bbio, file_offset) + bio_offset;
	e->u.csum.len = BPF_CORE_READ(bi, root, fs_info, sectorsize);
	e->u.csum.mirror = BPF_CORE_READ(bbio, mirror_num);
	e->stack_id = stack_of(ctx);
	bdt_submit(e);
	return 0;
}

#endif /* BDT_CHECKSUMS_BPF_H */
