/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Numbers shared by the BPF programs and the loader: one per hook of
 * bpf/hooks.def (in table order, from 1) and one per attach mechanism. The
 * C++ side uses them as bdt::HookId and bdt::Mechanism (include/bdt/hooks.h).
 */
#ifndef BDT_HOOK_IDS_H
#define BDT_HOOK_IDS_H

enum bdt_hook_id {
	BDT_HOOK_NONE = 0,
#define BDT_TRACEPOINT(id, ...) BDT_HOOK_##id,
#define BDT_SYSCALL(id, ...) BDT_HOOK_##id,
#define BDT_FUNCTION(id, ...) BDT_HOOK_##id,
#define BDT_DETECTOR(...)
#include "hooks.def"
#include "hooks_undef.h"
	BDT_HOOK_END, /* one past the last hook */
};

enum bdt_mechanism {
	BDT_MECH_NONE = 0,
	BDT_MECH_TP_BTF,     /* tp_btf: BTF-typed raw tracepoint */
	BDT_MECH_RAW_TP,     /* raw_tp: raw tracepoint, arguments untyped */
	BDT_MECH_TRACEPOINT, /* classic (perf) tracepoint, id from tracefs */
	BDT_MECH_FENTRY,     /* fentry/fexit trampoline */
	BDT_MECH_KPROBE,     /* kprobe/kretprobe */
	BDT_MECH_END,
};

#endif /* BDT_HOOK_IDS_H */
