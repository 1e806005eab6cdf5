/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: function hooks (fentry/fexit and kprobe/kretprobe):
 * the macros that make a hook's programs, its arguments as a u64 array, and
 * the per-thread argument stash the kretprobes read.
 *
 * Every function hook exists as up to four programs sharing one handler:
 *   fe_X (fentry) / kp_X (kprobe)      on entry: handler(ctx, args, src)
 *   fx_X (fexit)  / kr_X (kretprobe)   on return: handler(ctx, args, ret, src)
 * The attach target is set by the loader (src/live/session.cpp) at open time
 * (fentry: bpf_program__set_attach_target, module BTF included) or at attach
 * time (kprobe: the exact /proc/kallsyms name, ThinLTO suffixes included), so
 * the SEC() names carry no function. Arguments reach the handlers as a u64
 * array in both cases: bpf_get_func_arg() for fentry/fexit (so a handler may
 * ask for more arguments than a kernel's prototype has: they read as 0), the
 * x86_64 argument registers for kprobes. kretprobes get their arguments from a
 * per-thread stash the kprobe filled (fexit has them in its context).
 * Argument layouts that changed between kernels are told by the loader from
 * the kernel's BTF prototypes (the layout rodata in config.bpf.h).
 */
#ifndef BDT_FN_HOOKS_BPF_H
#define BDT_FN_HOOKS_BPF_H

#define BDT_NARGS 5

struct fn_key {
	u32 tid;
	u32 hook; /* enum bdt_hook_id */
};

struct fn_args {
	u64 a[BDT_NARGS];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fn_key);
	__type(value, struct fn_args);
} fn_stash SEC(".maps");

static __always_inline void fe_args(u64 *ctx, u64 *a)
{
#pragma unroll
	for (int i = 0; i < BDT_NARGS; i++)
		if (bpf_get_func_arg(ctx, i, &a[i]))
			a[i] = 0;
}

static __always_inline void kp_args(struct pt_regs *regs, u64 *a)
{
	a[0] = regs->di;
	a[1] = regs->si;
	a[2] = regs->dx;
	a[3] = regs->cx;
	a[4] = regs->r8;
}

static __always_inline void stash_args(u32 hook, const u64 *a)
{
	struct fn_key k = { .tid = cur_tid(), .hook = hook };
	struct fn_args v;

#pragma unroll
	for (int i = 0; i < BDT_NARGS; i++)
		v.a[i] = a[i];
	bpf_map_update_elem(&fn_stash, &k, &v, BPF_ANY);
}

/* kretprobe: the arguments the kprobe saw; false when the entry was not seen. */
static __always_inline bool unstash_args(u32 hook, u64 *a)
{
	struct fn_key k = { .tid = cur_tid(), .hook = hook };
	struct fn_args *v = bpf_map_lookup_elem(&fn_stash, &k);

	if (!v)
		return false;
#pragma unroll
	for (int i = 0; i < BDT_NARGS; i++)
		a[i] = v->a[i];
	bpf_map_delete_elem(&fn_stash, &k);
	return true;
}

/* on entry: the fentry program */
#define BDT_FN_FENTRY(name, E)                                                  \
	SEC("fentry") int fe_##name(u64 *ctx)                                   \
	{                                                                       \
		u64 a[BDT_NARGS];                                               \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##name, BDT_MECH_FENTRY)               \
		fe_args(ctx, a);                                                \
		return E(ctx, a, BDT_SRC_FENTRY);                               \
	}

/* on entry: the kprobe program; hook != 0 keeps the arguments for the kretprobe */
#define BDT_FN_KPROBE(name, hook, E)                                            \
	SEC("kprobe") int kp_##name(struct pt_regs *ctx)                        \
	{                                                                       \
		u64 a[BDT_NARGS];                                               \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##name, BDT_MECH_KPROBE)               \
		kp_args(ctx, a);                                                \
		if (hook)                                                       \
			stash_args(hook, a);                                    \
		return E(ctx, a, BDT_SRC_KPROBE);                               \
	}

#define BDT_FN_RET(name, hook, X)                                               \
	SEC("fexit") int fx_##name(u64 *ctx)                                    \
	{                                                                       \
		u64 a[BDT_NARGS], ret = 0;                                      \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##name, BDT_MECH_FENTRY)               \
		fe_args(ctx, a);                                                \
		bpf_get_func_ret(ctx, &ret);                                    \
		return X(ctx, a, (s64)ret, BDT_SRC_FENTRY);                     \
	}                                                                       \
	SEC("kretprobe") int kr_##name(struct pt_regs *ctx)                     \
	{                                                                       \
		u64 a[BDT_NARGS];                                               \
		BDT_FLOOR();                                                    \
		BDT_TEST_REFUSE(BDT_HOOK_##name, BDT_MECH_KPROBE)               \
		if (!unstash_args(hook, a))                                     \
			return 0;                                               \
		return X(ctx, a, (s64)ctx->ax, BDT_SRC_KPROBE);                 \
	}

static __always_inline int fn_no_enter(void *ctx, u64 *a, u8 src)
{
	return 0;
}

/* The programs of a BDT_FUNCTION entry of hooks.def, by its halves (the
 * kretprobe's argument stash is keyed by the hook's id): */
/* ENTER(E): enter half only */
#define BDT_FN_ENTER_(name, E) BDT_FN_FENTRY(name, E) BDT_FN_KPROBE(name, 0, E)
/* EXIT(X): exit half only; the kprobe just keeps the arguments for the kretprobe */
#define BDT_FN_EXIT_(name, X)                                                   \
	BDT_FN_KPROBE(name, BDT_HOOK_##name, fn_no_enter) BDT_FN_RET(name, BDT_HOOK_##name, X)
/* BOTH(E, X): enter and exit halves */
#define BDT_FN_BOTH_(name, E, X)                                                \
	BDT_FN_FENTRY(name, E) BDT_FN_KPROBE(name, BDT_HOOK_##name, E)          \
	BDT_FN_RET(name, BDT_HOOK_##name, X)

#endif /* BDT_FN_HOOKS_BPF_H */
