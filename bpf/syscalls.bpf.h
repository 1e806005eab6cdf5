/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: what every syscall hook shares (the BDT_SYSCALL entries
 * of hooks.def: the ioctl hooks of ioctl.bpf.h, the write-family and io_submit
 * hooks of fallback.bpf.h).
 *   - The records of the classic syscalls:sys_enter_<name> / sys_exit_<name>
 *     tracepoints (tracefs' format files): one layout for every syscall. A
 *     program may read only as far as its syscall's record goes, or the kernel
 *     refuses to attach it: each hooks.def entry reads the arguments its
 *     syscall has.
 *   - The raw sys_enter(regs, id) / sys_exit(regs, ret), which every syscall of
 *     the machine runs: the syscall number is compared before anything else.
 *     regs is a BTF pointer in the tp_btf programs (btf, BDT_RD).
 */
#ifndef BDT_SYSCALLS_BPF_H
#define BDT_SYSCALLS_BPF_H

/* x86_64 syscall numbers */
#define BDT_NR_WRITE 1
#define BDT_NR_IOCTL 16
#define BDT_NR_PWRITE64 18
#define BDT_NR_WRITEV 20
#define BDT_NR_IO_SUBMIT 209
#define BDT_NR_PWRITEV 296
#define BDT_NR_PWRITEV2 328

struct sys_enter_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	u64 args[6];
};

struct sys_exit_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	s64 ret;
};

/* raw sys_enter: true when the syscall is nr, its arguments then in a[0..5]
 * (x86_64: di, si, dx, r10, r8, r9). */
static __always_inline bool raw_sys_enter_args(u64 *ctx, s64 nr, bool btf, u64 *a)
{
	struct pt_regs *regs = (void *)ctx[0];

	if ((s64)ctx[1] != nr)
		return false;
	BDT_ARG_OR_RETURN(regs);
	a[0] = BDT_RD(btf, regs, di);
	a[1] = BDT_RD(btf, regs, si);
	a[2] = BDT_RD(btf, regs, dx);
	a[3] = BDT_RD(btf, regs, r10);
	a[4] = BDT_RD(btf, regs, r8);
	a[5] = BDT_RD(btf, regs, r9);
	return true;
}

/* raw sys_exit: true when the syscall returning (ret = ctx[1]) is nr. */
static __always_inline bool raw_sys_exit_is(u64 *ctx, s64 nr, bool btf)
{
	struct pt_regs *regs = (void *)ctx[0];

	BDT_ARG_OR_RETURN(regs);
	return (s64)BDT_RD(btf, regs, orig_ax) == nr;
}

#endif /* BDT_SYSCALLS_BPF_H */
