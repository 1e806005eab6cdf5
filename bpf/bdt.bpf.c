// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * btrfs-dio-trace: the BPF programs (one object, one ring buffer).
 *
 * The programs are made here from the hook table (hooks.def: read it for
 * what each entry makes); what each hook does lives in the *.bpf.h pieces
 * included below, one per subject. Every tracepoint hook exists as tp_btf
 * (preferred) and raw_tp (the kernel has the tracepoint but not its
 * btf_trace_* type), a syscall hook also as a classic tracepoint; the loader
 * (src/live/session.cpp, planned by src/loader/plan.cpp) turns autoload on
 * for exactly the programs of each hook's chosen mechanism. The variants of
 * a hook share one handler that reads the arguments from the u64 context
 * array and every kernel field through CO-RE (kernel_types.h), so no field
 * offset is compiled in. Function hooks (fentry/fexit, kprobe/kretprobe)
 * are described in fn_hooks.bpf.h.
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
#include "counts.bpf.h"
#include "emission.bpf.h"
#include "filters.bpf.h"
#include "fn_hooks.bpf.h"
#include "syscalls.bpf.h"
#include "triggers.bpf.h"
#include "fallback_req.bpf.h"
#include "lazy.bpf.h"
#include "fallback.bpf.h"
#include "direct_writes.bpf.h"
#include "dio.bpf.h"
#include "extent_maps.bpf.h"
#include "ordered.bpf.h"
#include "extent_buffers.bpf.h"
#include "ioctl.bpf.h"
#include "checksums.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- the programs, one set per entry of hooks.def -------------------------------- */
/* tracepoints: tp_btf and raw_tp. `btf` is true in the tp_btf program: its
 * handler loads the fields behind its pointer arguments directly (BDT_RD,
 * kernel_shims.bpf.h) */
#define BDT_TRACEPOINT(id, system, tp, call, purpose)                           \
	SEC("tp_btf/" #tp) int tb_##id(u64 *ctx)                                \
	{                                                                       \
		const bool btf = true;                                          \
		(void)btf;                                                      \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##id, BDT_MECH_TP_BTF)                 \
		return call;                                                    \
	}                                                                       \
	SEC("raw_tp/" #tp) int rt_##id(u64 *ctx)                                \
	{                                                                       \
		const bool btf = false;                                         \
		(void)btf;                                                      \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##id, BDT_MECH_RAW_TP)                 \
		return call;                                                    \
	}
/* syscalls: the classic tracepoint, and tp_btf/raw_tp on the raw syscall tracepoint */
#define BDT_SYSCALL(id, system, tp, raw_system, raw_tp, classic_ctx, classic_call, raw_call, \
		    purpose)                                                    \
	SEC("tracepoint/" #system "/" #tp) int tp_##id(struct classic_ctx *ctx) \
	{                                                                       \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##id, BDT_MECH_TRACEPOINT)             \
		return classic_call;                                            \
	}                                                                       \
	SEC("tp_btf/" #raw_tp) int tb_##id(u64 *ctx)                            \
	{                                                                       \
		const bool btf = true;                                          \
		(void)btf;                                                      \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##id, BDT_MECH_TP_BTF)                 \
		return raw_call;                                                \
	}                                                                       \
	SEC("raw_tp/" #raw_tp) int rt_##id(u64 *ctx)                            \
	{                                                                       \
		const bool btf = false;                                         \
		(void)btf;                                                      \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##id, BDT_MECH_RAW_TP)                 \
		return raw_call;                                                \
	}
/* functions: fentry/fexit and kprobe/kretprobe by halves (fn_hooks.bpf.h) */
#define ENTER(e) ENTER_, e
#define EXIT(x) EXIT_, x
#define BOTH(e, x) BOTH_, e, x
#define BDT_FN_PROGS(id, kind, ...) BDT_FN_##kind(id, __VA_ARGS__)
#define BDT_FUNCTION(id, name, candidates, halves, equivalents, layout, purpose) \
	BDT_FN_PROGS(id, halves)
#define BDT_DETECTOR(...)
#include "hooks.def"
#include "hooks_undef.h"
