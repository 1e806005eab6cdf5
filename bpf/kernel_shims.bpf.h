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

/*
 * A field behind a pointer. In a tp_btf program the pointer arguments are
 * BTF pointers, and so are the pointers loaded from their fields: the program
 * loads a field directly (one instruction; a faulting load reads as 0)
 * instead of calling bpf_probe_read_kernel(). Every other program (raw_tp,
 * and the function hooks, which take their arguments as numbers) reads with
 * BPF_CORE_READ. Handlers get `btf` from their program as a constant, so the
 * compiler keeps one of the two. A pointer made by arithmetic (btrfs_i(), a
 * container_of) or read with BPF_CORE_READ is a plain number: read it with
 * BPF_CORE_READ.
 */
#define BDT_RD(btf, p, f) ((btf) ? (p)->f : BPF_CORE_READ(p, f)) /* not nested: one per statement */

/*
 * A field behind a pointer made by arithmetic (btrfs_i()) or read from memory
 * (a plain number): with rdonly_untyped, a direct load through
 * bpf_rdonly_cast(p, 0), which the verifier types as untyped read-only memory
 * (loads at any offset, a faulting one reads 0, as bpf_probe_read_kernel) and
 * turns into a register move; else BPF_CORE_READ. Kernels that have the kfunc
 * but not its untyped form (6.2 up to at least 6.12) refuse the cast's call:
 * the loader sets rdonly_untyped only when a probe program with it loads
 * (src/loader/probe.cpp), and elsewhere the verifier drops the call as dead
 * code. No program that loads where the kfunc is missing may contain it (libbpf
 * 1.1.2 leaves the __weak call unresolved, refused even as dead code): only
 * tb_dio_begin uses it (iomap tracepoints: newer). One field per use, as BDT_RD.
 */
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id__k) __ksym __weak;
#define BDT_RDU(p, f)                                                            \
	(rdonly_untyped ? ((typeof(p))bpf_rdonly_cast((const void *)(p), 0))->f : \
			  BPF_CORE_READ(p, f))

static __always_inline bool is_btrfs_sb(struct super_block *sb, bool btf)
{
	return sb && BDT_RD(btf, sb, s_magic) == BTRFS_MAGIC;
}

/* The current task's comm (as bpf_get_current_comm: the kernel keeps it NUL
 * padded); btf: two direct loads instead of the helper. */
static __always_inline void task_comm(char *dst, bool btf)
{
	if (btf) {
		const u64 *c = (const u64 *)bpf_get_current_task_btf()->comm;
		u64 *d = (u64 *)dst;

		d[0] = c[0];
		d[1] = c[1];
		return;
	}
	bpf_get_current_comm(dst, BDT_COMM_LEN);
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

/* Identity of a btrfs inode: fsid, subvolume anon dev (= st_dev), sb dev, ino,
 * root (bi a BTF pointer when btf, see BDT_RD). */
static __always_inline void btrfs_ident_rd(struct ident *id, const struct btrfs_inode *bi, bool btf)
{
	struct btrfs_root *root = BDT_RD(btf, bi, root);
	struct btrfs_fs_info *fs_info = BDT_RD(btf, root, fs_info);
	struct super_block *sb = BDT_RD(btf, bi, vfs_inode.i_sb);

	read_fsid(id->fsid, fs_info);
	id->dev = BDT_RD(btf, root, anon_dev);
	id->sb_dev = BDT_RD(btf, sb, s_dev);
	id->ino = BDT_RD(btf, bi, vfs_inode.i_ino);
	id->root = BDT_RD(btf, root, root_key.objectid);
}

static __always_inline void btrfs_ident(struct ident *id, const struct btrfs_inode *bi)
{
	btrfs_ident_rd(id, bi, false);
}

/*
 * The per-subvolume part of an identity (fsid, anon dev), cached per CPU by
 * the root's address and objectid (subvolume ids are never reused), so that a
 * request whose inode is reached by container_of (no direct loads) reads two
 * fields instead of seven. sb_dev and ino come from the caller.
 */
#define BDT_ROOT_CACHE 64
struct root_ident {
	u64 root;
	u64 root_id;
	u64 dev;
	u8 fsid[BDT_FSID_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BDT_ROOT_CACHE);
	__type(key, u32);
	__type(value, struct root_ident);
} root_cache SEC(".maps");

static __always_inline void btrfs_ident_cached(struct ident *id, const struct btrfs_inode *bi,
					       u64 sb_dev, u64 ino, bool btf)
{
	struct btrfs_root *root = btf ? BDT_RDU(bi, root) : BPF_CORE_READ(bi, root);
	u64 root_id = btf ? BDT_RDU(root, root_key.objectid) : BPF_CORE_READ(root, root_key.objectid);
	u32 k = (u32)(((u64)root >> 6) ^ root_id) & (BDT_ROOT_CACHE - 1);
	struct root_ident *c = bpf_map_lookup_elem(&root_cache, &k);

	id->sb_dev = sb_dev;
	id->ino = ino;
	id->root = root_id;
	if (c && c->root == (u64)root && c->root_id == root_id) {
		__builtin_memcpy(id->fsid, c->fsid, BDT_FSID_LEN);
		id->dev = c->dev;
		return;
	}
	read_fsid(id->fsid, BPF_CORE_READ(root, fs_info));
	id->dev = BPF_CORE_READ(root, anon_dev);
	if (c) {
		c->root = (u64)root;
		c->root_id = root_id;
		c->dev = id->dev;
		__builtin_memcpy(c->fsid, id->fsid, BDT_FSID_LEN);
	}
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

static __always_inline u64 iter_user_addr(struct iov_iter *iter, bool btf)
{
	u8 type = BDT_RD(btf, iter, iter_type);

	if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) &&
	    type == bpf_core_enum_value(enum iter_type, ITER_UBUF))
		return (u64)BDT_RD(btf, iter, ubuf);
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		const struct iovec *iov;

		if (bpf_core_field_exists(iter->__iov))
			iov = BDT_RD(btf, iter, __iov);
		else
			iov = BDT_RD(btf, (struct iov_iter___iov *)iter, iov);
		/* Not a direct load even from tp_btf: __iov shares its offset with
		 * __ubuf_iovec.iov_base (void __user *), and the 6.12 verifier types the
		 * loaded pointer as that, a scalar: "R3 invalid mem access 'scalar'" refused
		 * tb_dio_begin there (the hook fell back to raw_tp). */
		return (u64)BPF_CORE_READ(iov, iov_base);
	}
	return 0;
}

static __always_inline bool iter_is_write(struct iov_iter *iter, bool btf)
{
	/* data_source: the iterator is the source of data, i.e. a write. */
	if (bpf_core_field_exists(iter->data_source))
		return BDT_RD(btf, iter, data_source);
	return BDT_RD(btf, (struct iov_iter___old *)iter, type) & 1;
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
