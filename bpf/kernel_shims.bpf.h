/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: kernel-layout shims. btrfs constants, a file's
 * identity, and the reads of structures whose layout changed between kernels
 * (CO-RE flavors from kernel_types.h: extent maps, the extent map tree,
 * iov_iter), so the subject pieces never test a kernel version.
 */
#ifndef BDT_KERNEL_SHIMS_BPF_H
#define BDT_KERNEL_SHIMS_BPF_H

#define BTRFS_MAGIC 0x9123683EUL
#define BDT_VM_WRITE 0x00000002UL
#define BDT_VM_SHARED 0x00000008UL
#define BDT_PAGE_SHIFT 12
#define BDT_INODE_NODATASUM (1U << 0)
#define BDT_IOMAP_DIO_PARTIAL (1U << 2)
#define BDT_EM_LAST_BYTE ((u64)-4)

/* Identity of a file as the events carry it. */
struct ident {
	u8 fsid[BDT_FSID_LEN];
	u64 dev;
	u64 sb_dev;
	u64 ino;
	u64 root;
};

static __always_inline bool is_btrfs_sb(struct super_block *sb)
{
	return sb && BPF_CORE_READ(sb, s_magic) == BTRFS_MAGIC;
}

static __always_inline struct btrfs_inode *btrfs_i(struct inode *inode)
{
	return (struct btrfs_inode *)((char *)inode - bpf_core_field_offset(struct btrfs_inode, vfs_inode));
}

static __always_inline void read_fsid(u8 *dst, struct btrfs_fs_info *fs_info)
{
	struct btrfs_fs_devices *fsd = BPF_CORE_READ(fs_info, fs_devices);

	if (fsd)
		bpf_probe_read_kernel(dst, BDT_FSID_LEN, &fsd->fsid);
}

/* Identity of a btrfs inode: fsid, subvolume anon dev (= st_dev), sb dev, ino, root. */
static __always_inline void btrfs_ident(struct ident *id, const struct btrfs_inode *bi)
{
	struct btrfs_root *root = BPF_CORE_READ(bi, root);
	struct btrfs_fs_info *fs_info = BPF_CORE_READ(root, fs_info);

	read_fsid(id->fsid, fs_info);
	id->dev = BPF_CORE_READ(root, anon_dev);
	id->sb_dev = BPF_CORE_READ(bi, vfs_inode.i_sb, s_dev);
	id->ino = BPF_CORE_READ(bi, vfs_inode.i_ino);
	id->root = BPF_CORE_READ(root, root_key.objectid);
}

/* Address of the inode's extent map tree root pointer (identity of the tree). */
static __always_inline u64 em_tree_root(const struct btrfs_inode *bi)
{
	if (bpf_core_field_exists(bi->extent_tree.root))
		return (u64)&bi->extent_tree.root.rb_node;
	return (u64)&((struct extent_map_tree___cached *)&bi->extent_tree)->map.rb_root.rb_node;
}

static __always_inline u64 em_block_start(const struct extent_map *em)
{
	if (bpf_core_field_exists(em->disk_bytenr)) {
		u64 disk = BPF_CORE_READ(em, disk_bytenr);
		u32 fl = BPF_CORE_READ(em, flags);

		if (disk >= BDT_EM_LAST_BYTE || (fl & em_compress_mask))
			return disk;
		return disk + BPF_CORE_READ(em, offset);
	}
	return BPF_CORE_READ((struct extent_map___old *)em, block_start);
}

static __always_inline u32 em_flags(const struct extent_map *em)
{
	if (bpf_core_field_size(em->flags) == 4)
		return BPF_CORE_READ(em, flags);
	return (u32)BPF_CORE_READ((struct extent_map___old *)em, flags);
}

static __always_inline u64 iter_user_addr(struct iov_iter *iter)
{
	u8 type = BPF_CORE_READ(iter, iter_type);

	if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) &&
	    type == bpf_core_enum_value(enum iter_type, ITER_UBUF))
		return (u64)BPF_CORE_READ(iter, ubuf);
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		const struct iovec *iov;

		if (bpf_core_field_exists(iter->__iov))
			iov = BPF_CORE_READ(iter, __iov);
		else
			iov = BPF_CORE_READ((struct iov_iter___iov *)iter, iov);
		return (u64)BPF_CORE_READ(iov, iov_base);
	}
	return 0;
}

static __always_inline bool iter_is_write(struct iov_iter *iter)
{
	/* data_source: the iterator is the source of data, i.e. a write. */
	if (bpf_core_field_exists(iter->data_source))
		return BPF_CORE_READ(iter, data_source);
	return BPF_CORE_READ((struct iov_iter___old *)iter, type) & 1;
}

static __always_inline u32 cur_tid(void)
{
	return (u32)bpf_get_current_pid_tgid();
}

static __always_inline bool is_err_value(s64 v)
{
	return v < 0 && v >= -4095;
}

/*
 * Tracepoint pointer arguments that may be NULL. Since "bpf: Augment raw_tp
 * arguments with PTR_MAYBE_NULL" (838a10bd2ebf, 6.13; in 6.12.y stable, e.g.
 * Debian's 6.12.118) the verifier types a tp_btf pointer argument as
 * trusted_ptr_or_null when kernel/bpf/btf.c's raw_tp_null_args[] lists it, and
 * EVERY pointer argument of a tracepoint defined in a module that the table
 * does not list: btrfs is a module on distribution kernels and the table has
 * no btrfs entry (nor iomap, sys_enter/sys_exit ones) up to 6.18. Pointer
 * arithmetic on such a register is refused before a NULL check, and
 * BPF_CORE_READ computes a field address: every handler checks each pointer
 * argument it uses before anything else (the raw_tp and function-hook callers
 * pass plain numbers, where the check costs one branch). barrier_var() keeps
 * the compiler from computing a field address above the check.
 */
#define BDT_ARG_OR_RETURN(p)		\
	do {				\
		if (!(p))		\
			return 0;	\
		barrier_var(p);		\
	} while (0)

#endif /* BDT_KERNEL_SHIMS_BPF_H */
