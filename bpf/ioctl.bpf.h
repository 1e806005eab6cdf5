/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: send, balance and relocation. The btrfs ioctls that
 * send or relocate (syscall tracepoints), btrfs_ioctl_send/btrfs_balance
 * (function hooks), btrfs_relocate_block_group and the
 * btrfs_reclaim_block_group tracepoint.
 */
#ifndef BDT_IOCTL_BPF_H
#define BDT_IOCTL_BPF_H

/* Which source reports an ioctl's begin/end: the syscall hooks, or the function
 * hooks on btrfs_ioctl_send()/btrfs_balance() (one source per call, never both). */
enum { IOC_OWNER_NONE = 0, IOC_OWNER_SYSCALL, IOC_OWNER_FN, IOC_OWNER_FN_DONE };

struct ioctl_req {
	struct ident id;
	u64 raw_cmd;
	u32 fd;
	u32 cmd;
	u32 owner;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, struct ioctl_req);
} inflight_ioctl SEC(".maps");

/* ---- relocation: the btrfs_reclaim_block_group tracepoint ------------------------- */
static __always_inline int on_reclaim_bg(u64 *ctx)
{
	const struct btrfs_block_group *bg = (void *)ctx[0];
	struct btrfs_fs_info *fs_info;
	u64 sb_dev;
	struct bdt_raw_event *e;

	BDT_ARG_OR_RETURN(bg);
	fs_info = BPF_CORE_READ(bg, fs_info);
	sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	if (!fs_pass(sb_dev))
		return 0;
	e = reserve(BDT_EV_RELOC_BEGIN);
	if (!e)
		return 0;
	fill_task(e);
	read_fsid(e->fsid, fs_info);
	e->sb_dev = sb_dev;
	e->u.rel.block_group = BPF_CORE_READ(bg, start);
	e->u.rel.len = BPF_CORE_READ(bg, length);
	e->u.rel.bg_flags = BPF_CORE_READ(bg, flags);
	bdt_submit(e);
	return 0;
}

/* ---- ioctls ------------------------------------------------------------------------ */
static __always_inline u32 ioctl_kind(u32 cmd)
{
	switch (cmd) {
	case BTRFS_IOC_SEND: return BDT_IOC_SEND;
	case BTRFS_IOC_BALANCE: return BDT_IOC_BALANCE;
	case BTRFS_IOC_BALANCE_V2: return BDT_IOC_BALANCE_V2;
	case BTRFS_IOC_RM_DEV: return BDT_IOC_RM_DEV;
	case BTRFS_IOC_RM_DEV_V2: return BDT_IOC_RM_DEV_V2;
	case BTRFS_IOC_RESIZE: return BDT_IOC_RESIZE;
	}
	return BDT_IOC_OTHER;
}

static __always_inline int ioctl_enter(u64 fd, u64 raw_cmd)
{
	u32 kind = ioctl_kind((u32)raw_cmd);
	struct task_struct *task;
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = 0;
	struct inode *inode;
	struct super_block *sb;
	struct ioctl_req req = {};
	struct bdt_raw_event *e;
	u32 tid;

	if (kind == BDT_IOC_OTHER)
		return 0;
	if (!task_pass())
		return 0;
	task = (void *)bpf_get_current_task();
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	inode = BPF_CORE_READ(f, f_inode);
	sb = BPF_CORE_READ(inode, i_sb);
	if (!is_btrfs_sb(sb, false) || !fs_pass(BPF_CORE_READ(sb, s_dev)))
		return 0;
	btrfs_ident(&req.id, btrfs_i(inode));
	req.fd = fd;
	req.cmd = kind;
	req.raw_cmd = raw_cmd;
	/* send/balance with their function hooks attached: those report the call
	 * (also balance resumed by a kernel thread); this only keeps fd and cmd */
	req.owner = (ioc_fn_mask & (1u << kind)) ? IOC_OWNER_NONE : IOC_OWNER_SYSCALL;
	tid = (u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&inflight_ioctl, &tid, &req, BPF_ANY);
	if (req.owner != IOC_OWNER_SYSCALL)
		return 0;

	e = reserve(BDT_EV_IOCTL_BEGIN);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &req.id);
	e->u.ioc.fd = req.fd;
	e->u.ioc.cmd = req.cmd;
	e->u.ioc.raw_cmd = raw_cmd;
	bdt_submit(e);
	return 0;
}

static __always_inline int ioctl_exit(s64 ret)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct ioctl_req *req = bpf_map_lookup_elem(&inflight_ioctl, &tid);
	struct bdt_raw_event *e;

	if (!req)
		return 0;
	e = req->owner == IOC_OWNER_SYSCALL ? reserve(BDT_EV_IOCTL_END) : 0;
	if (e) {
		fill_task(e);
		put_ident(e, &req->id);
		e->u.ioc.fd = req->fd;
		e->u.ioc.cmd = req->cmd;
		e->u.ioc.raw_cmd = req->raw_cmd;
		e->u.ioc.ret = ret;
		bdt_submit(e);
	}
	bpf_map_delete_elem(&inflight_ioctl, &tid);
	return 0;
}

/* raw sys_enter / sys_exit, ioctl only (syscalls.bpf.h) */
static __always_inline int raw_ioctl_enter(u64 *ctx, bool btf)
{
	u64 a[6];

	if (!raw_sys_enter_args(ctx, BDT_NR_IOCTL, btf, a))
		return 0;
	return ioctl_enter(a[0], a[1]);
}

static __always_inline int raw_ioctl_exit(u64 *ctx, bool btf)
{
	if (!raw_sys_exit_is(ctx, BDT_NR_IOCTL, btf))
		return 0;
	return ioctl_exit((s64)ctx[1]);
}

/* ---- relocation: btrfs_relocate_block_group(fs_info, group_start[, verbose]) ------ */
static __always_inline int fn_reloc(void *ctx, u64 *a, s64 ret, u8 src, bool exit)
{
	struct btrfs_fs_info *fs_info = (void *)a[0];
	u64 sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	struct bdt_raw_event *e;

	if (!fs_pass(sb_dev))
		return 0;
	e = reserve_src(exit ? BDT_EV_RELOC_END : BDT_EV_RELOC_BEGIN, src);
	if (!e)
		return 0;
	fill_task(e);
	read_fsid(e->fsid, fs_info);
	e->sb_dev = sb_dev;
	e->u.rel.block_group = a[1];
	if (exit)
		e->u.rel.ret = (s32)ret;
	bdt_submit(e);
	return 0;
}

static __always_inline int fn_reloc_enter(void *ctx, u64 *a, u8 src)
{
	return fn_reloc(ctx, a, 0, src, false);
}

static __always_inline int fn_reloc_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_reloc(ctx, a, ret, src, true);
}

/* ---- send and balance at btrfs' entry points ----------------------------------------
 * btrfs_ioctl_send(X, args): X is struct inode (6.1), struct btrfs_inode or struct
 * btrfs_root (newer; send_layout from the BTF prototype); btrfs_balance(fs_info, bctl,
 * bargs) runs for the balance ioctls and for a balance resumed after mount (kernel
 * thread, no ioctl: fd -1). Inside an ioctl the syscall hook's record gives fd, cmd and
 * the file's identity; the call is reported by whichever source saw it first. */
static __always_inline struct btrfs_fs_info *send_fs_info(u64 arg0)
{
	switch (send_layout) {
	case 1: return BPF_CORE_READ((struct btrfs_inode *)arg0, root, fs_info);
	case 2: return BPF_CORE_READ((struct btrfs_root *)arg0, fs_info);
	}
	return BPF_CORE_READ((struct inode *)arg0, i_sb, s_fs_info);
}

static __always_inline int fn_ioc(void *ctx, u64 *a, s64 ret, u8 src, bool exit, u32 kind)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct ioctl_req *req = bpf_map_lookup_elem(&inflight_ioctl, &tid);
	struct ioctl_req fresh = {};
	struct btrfs_fs_info *fs_info;
	struct bdt_raw_event *e;

	if (req && req->owner == IOC_OWNER_SYSCALL)
		return 0;
	if (!exit) {
		if (!req) {
			if (!task_pass())
				return 0;
			fs_info = kind == BDT_IOC_SEND ? send_fs_info(a[0]) : (void *)a[0];
			fresh.id.sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
			if (!fs_pass(fresh.id.sb_dev))
				return 0;
			read_fsid(fresh.id.fsid, fs_info);
			fresh.fd = (u32)-1;
			fresh.cmd = kind;
			fresh.owner = IOC_OWNER_FN;
			bpf_map_update_elem(&inflight_ioctl, &tid, &fresh, BPF_ANY);
			req = bpf_map_lookup_elem(&inflight_ioctl, &tid);
			if (!req)
				return 0;
		} else if (req->owner == IOC_OWNER_NONE) {
			req->owner = IOC_OWNER_FN;
		} else {
			return 0;
		}
	} else if (!req || req->owner != IOC_OWNER_FN) {
		return 0;
	}
	e = reserve_src(exit ? BDT_EV_IOCTL_END : BDT_EV_IOCTL_BEGIN, src);
	if (e) {
		fill_task(e);
		put_ident(e, &req->id);
		e->u.ioc.fd = req->fd;
		e->u.ioc.cmd = req->cmd;
		e->u.ioc.raw_cmd = req->raw_cmd;
		e->u.ioc.ret = exit ? (s64)(s32)ret : 0;
		bdt_submit(e);
	}
	if (exit) {
		if (req->fd == (u32)-1)
			bpf_map_delete_elem(&inflight_ioctl, &tid);
		else
			req->owner = IOC_OWNER_FN_DONE;
	}
	return 0;
}

static __always_inline int fn_send_enter(void *ctx, u64 *a, u8 src)
{
	return fn_ioc(ctx, a, 0, src, false, BDT_IOC_SEND);
}

static __always_inline int fn_send_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_ioc(ctx, a, ret, src, true, BDT_IOC_SEND);
}

static __always_inline int fn_balance_enter(void *ctx, u64 *a, u8 src)
{
	return fn_ioc(ctx, a, 0, src, false, BDT_IOC_BALANCE);
}

static __always_inline int fn_balance_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_ioc(ctx, a, ret, src, true, BDT_IOC_BALANCE);
}

#endif /* BDT_IOCTL_BPF_H */
