// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * btrfs-dio-trace: the BPF programs (one object, one ring buffer).
 *
 * This file holds the program declarations; what each hook does lives in
 * the *.bpf.h pieces included below, one per subject. Every tracepoint
 * hook exists twice: as tp_btf (preferred) and as raw_tp (fallback when the
 * kernel has the tracepoint but not its btf_trace_* type); the loader
 * (src/loader/hooks.cpp) turns autoload on for exactly one of them, or none
 * when the tracepoint is missing. Both variants share one handler that reads
 * the arguments from the u64 context array and every kernel field through
 * CO-RE (kernel_types.h), so no field offset is compiled in. Function hooks
 * (fentry/fexit, kprobe/kretprobe) are described in fn_hooks.bpf.h.
 */
#include "kernel_types.h"
#include <linux/bpf.h>
#include <linux/btrfs.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "events.h"

/* the pieces, each after those it uses */
#include "config.bpf.h"
#include "kernel_shims.bpf.h"
#include "emission.bpf.h"
#include "filters.bpf.h"
#include "fn_hooks.bpf.h"
#include "dio.bpf.h"
#include "extent_maps.bpf.h"
#include "ordered.bpf.h"
#include "extent_buffers.bpf.h"
#include "ioctl.bpf.h"
#include "checksums.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- send/balance/relocation ioctls: syscall tracepoints -------------------- */
SEC("tracepoint/syscalls/sys_enter_ioctl")
int tp_ioctl_enter(struct sys_enter_ioctl_ctx *ctx)
{
	BDT_FLOOR();
	return ioctl_enter(ctx->fd, ctx->cmd);
}

SEC("tracepoint/syscalls/sys_exit_ioctl")
int tp_ioctl_exit(struct sys_exit_ioctl_ctx *ctx)
{
	BDT_FLOOR();
	return ioctl_exit(ctx->ret);
}

/* fallback: raw sys_enter/sys_exit (every syscall; filter by number) */
SEC("tp_btf/sys_enter")
int tb_sys_enter(u64 *ctx)
{
	struct pt_regs *regs = (void *)ctx[0];

	BDT_FLOOR();
	if ((long)ctx[1] != nr_ioctl)
		return 0;
	BDT_ARG_OR_RETURN(regs);
	return ioctl_enter(BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si));
}

SEC("tp_btf/sys_exit")
int tb_sys_exit(u64 *ctx)
{
	struct pt_regs *regs = (void *)ctx[0];

	BDT_FLOOR();
	BDT_ARG_OR_RETURN(regs);
	if (BPF_CORE_READ(regs, orig_ax) != nr_ioctl)
		return 0;
	return ioctl_exit((s64)ctx[1]);
}

/* ---- the programs: a tp_btf and a raw_tp twin per tracepoint ------------------- */
#define BDT_TWIN(tp, fn, call)                                                  \
	SEC("tp_btf/" #tp) int tb_##fn(u64 *ctx) { BDT_FLOOR(); return call; } \
	SEC("raw_tp/" #tp) int rt_##fn(u64 *ctx) { BDT_FLOOR(); return call; }

BDT_TWIN(iomap_dio_rw_begin, dio_begin, on_dio_begin(ctx, BDT_SRC_TRACEPOINT))
BDT_TWIN(iomap_dio_rw_queued, dio_queued, on_dio_queued(ctx))
BDT_TWIN(iomap_dio_complete, dio_complete, on_dio_complete(ctx, BDT_SRC_TRACEPOINT, ctx))
BDT_TWIN(btrfs_get_extent, get_extent, on_get_extent(ctx))
BDT_TWIN(btrfs_handle_em_exist, em_exist, on_em_exist(ctx))
BDT_TWIN(btrfs_ordered_extent_add, oe_add, on_ordered(ctx, BDT_EV_OE_ADD))
BDT_TWIN(btrfs_ordered_extent_split, oe_split, on_ordered(ctx, BDT_EV_OE_SPLIT))
BDT_TWIN(btrfs_ordered_extent_start, oe_start, on_ordered(ctx, BDT_EV_OE_START))
BDT_TWIN(btrfs_ordered_extent_mark_finished, oe_mark_fin, on_ordered(ctx, BDT_EV_OE_MARK_FINISHED))
BDT_TWIN(btrfs_ordered_extent_remove, oe_remove, on_ordered(ctx, BDT_EV_OE_REMOVE))
BDT_TWIN(btrfs_finish_ordered_extent, oe_finish, on_finish_ordered(ctx))
BDT_TWIN(btrfs_reclaim_block_group, reclaim_bg, on_reclaim_bg(ctx))

/* ---- function hooks (fn_hooks.bpf.h) --------------------------------------------- */
BDT_FN_BOTH(dio_w, FN_DIO_W, fn_dio_enter, fn_dio_exit)
BDT_FN_BOTH(dio_r, FN_DIO_R, fn_dio_enter, fn_dio_exit)
BDT_FN_BOTH(dio_cmpl, FN_DIO_CMPL, fn_dio_cmpl_enter, fn_dio_cmpl_exit)
BDT_FN_BOTH(get_ext, FN_GET_EXT, fn_get_extent_enter, fn_get_extent_exit)
BDT_FN_EXIT(em_add, FN_EM_ADD, fn_em_add_exit)
BDT_FN_ENTER(oe_fin, fn_oe_finish_enter)
BDT_FN_BOTH(eb_free, FN_EB_FREE, fn_eb_free_enter, fn_eb_free_exit)
BDT_FN_EXIT(eb_find, FN_EB_FIND, fn_eb_find_exit)
BDT_FN_ENTER(eb_rel, fn_eb_release_enter)
BDT_FN_BOTH(reloc, FN_RELOC, fn_reloc_enter, fn_reloc_exit)
BDT_FN_EXIT(csum, FN_CSUM, fn_csum_exit)
BDT_FN_BOTH(send, FN_SEND, fn_send_enter, fn_send_exit)
BDT_FN_BOTH(balance, FN_BALANCE, fn_balance_enter, fn_balance_exit)
