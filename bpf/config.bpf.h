/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: configuration. The read-only data userspace sets
 * before load (filters, emission policy, the running kernel's bit numbers
 * and argument layouts) and the one flag it sets after attach.
 */
#ifndef BDT_CONFIG_BPF_H
#define BDT_CONFIG_BPF_H

#include "hook_ids.h"

/* First statement of every program: with bench_floor the verifier keeps only
 * this (a known rodata value: the rest is dead code and removed). */
#define BDT_FLOOR()		\
	do {			\
		if (bench_floor)	\
			return 0;	\
	} while (0)

const volatile bool filter_pid = false;
const volatile bool filter_comm = false;
const volatile bool filter_cgroup = false; /* task must be in cgroup_filter[0] or below */
const volatile __u32 filter_sb = 0;       /* kernel dev_t of the watched superblock */
const volatile __u32 em_compress_mask = 0; /* EXTENT_FLAG_COMPRESS_* of this kernel */
const volatile __u32 rec_slots = 0;        /* flight recorder slots per CPU (0: off) */
const volatile __u64 rec_instance = 0;     /* the recorder's instance id (bdt_rec_meta.instance) */
const volatile __u32 wake_mask = 255;      /* records per CPU between wakeups - 1 (emission.bpf.h) */
const volatile bool lat_hist_on = false;   /* --qemu: per-file latency histograms (lat_hist) */
/* set by the loader once they attached: bit (1 << BDT_IOC_*) for the ioctl kinds whose
 * begin/end the function hooks report (btrfs_ioctl_send(), btrfs_balance()) */
volatile __u32 ioc_fn_mask = 0;
/*
 * Emission policy (docs/performance.md). By default a hook emits a record only
 * when a detector can use it; records that carry nothing a detector reads are
 * not made (a record costs far more than the checks that skip it):
 *   - btrfs_get_extent tracepoint: only the lookup during which this thread's
 *     DIO request saw btrfs_handle_em_exist (the tracepoint has no enter
 *     half and never reports errors, so any other exit only decorates evidence);
 *   - btrfs_finish_ordered_extent / btrfs_finish_ordered_io: only when not
 *     uptodate; btrfs_ordered_extent_mark_finished: only with IOERR set;
 *   - dio_begin of a read: no bpf_find_vma (the buf_* fields describe write
 *     buffers only; no detector reads them for reads).
 * all_events (--all-events) makes every hook emit every record, as before.
 */
const volatile bool all_events = false;
/*
 * Lazy emission (triggers.bpf.h, lazy.bpf.h): off when every event is
 * wanted (--events, --record, --snapshot-dir, --pin-dir, --all-events).
 * trigger_mask: 1 << BDT_TRIG_* of the triggers the detectors need; hot_ns:
 * how long an inode stays hot after a trigger (the detectors' max_age_ns);
 * recent_ns: how far back a flush reaches for requests that already ended.
 */
const volatile bool lazy = false;
const volatile __u32 trigger_mask = 0;
const volatile __u64 hot_ns = 120000000000ULL;
const volatile __u64 recent_ns = 1000000000ULL;
const volatile __u32 nr_cpus = 1;          /* possible CPUs: rows of recent_dio */
/* the stall trigger: a request in flight longer than stall_ns (--stall-threshold)
 * plus its size at 4 MiB/s, as dio-stuck judges it */
const volatile __u64 stall_ns = 30000000000ULL;
/* the hidden --bench-floor: every program returns at once (BDT_FLOOR), so
 * scripts/bench/overhead.sh measures what the attached hooks alone cost */
const volatile bool bench_floor = false;
const volatile __u32 oe_ioerr_bit = 64;    /* BTRFS_ORDERED_IOERR (64: unknown) */
/* io_uring_complete(ctx, req, cqe) (6.4+) vs (ctx, req, user_data, res, cflags, ...) */
const volatile bool uring_cmpl_cqe = false;
const volatile __u32 oe_direct_bit = 64;   /* BTRFS_ORDERED_DIRECT (64: unknown) */

/* btrfs_ordered_extent::inode is a struct btrfs_inode * (6.3+) */
const volatile bool oe_inode_is_btrfs = false;
/* bpf_rdonly_cast(p, 0) is allowed (untyped read-only memory: kernel_shims.bpf.h,
 * BDT_RDU), probed at load (src/loader/probe.cpp) */
const volatile bool rdonly_untyped = false;
/* BTRFS_EXTENT_BUFFER_STALE's kernel bit number (64: unknown) */
const volatile __u32 eb_stale_bit = 64;
/* extent buffers: every free/find (true) or only those of STALE buffers (default) */
const volatile bool eb_all = false;

/* ---- function-hook argument layouts (ge_folio_args, em_add_layout, csum_layout,
 * send_layout): declared from bpf/hooks.def's LAYOUT entries, set by the loader
 * from the kernel's BTF prototypes (src/loader/plan.cpp) ---- */
#define BDT_TRACEPOINT(...)
#define BDT_SYSCALL(...)
#define BDT_DETECTOR(...)
#define NO_LAYOUT
#define LAYOUT(var, ...) const volatile __u32 var = 0;
#define BDT_FUNCTION(id, name, candidates, halves, equivalents, layout, purpose) layout
#include "hooks.def"
#include "hooks_undef.h"

/*
 * Testing aid (BDT_TEST_REFUSE, src/live/session.cpp): the programs of hook
 * test_refuse_hook (enum bdt_hook_id; BDT_HOOK_END: every hook) on the
 * mechanisms in test_refuse_mechs (1 << enum bdt_mechanism) read from an
 * address the verifier cannot accept, so the kernel refuses them and the
 * loader's fallback runs. Load-time constants: the verifier drops the check
 * from every other program.
 */
const volatile __u32 test_refuse_hook = 0;
const volatile __u32 test_refuse_mechs = 0;
#define BDT_TEST_REFUSE(hook, mech)                                                   \
	if ((test_refuse_hook == (hook) || test_refuse_hook == BDT_HOOK_END) &&        \
	    (test_refuse_mechs & (1u << (mech))))                                      \
		return *(volatile int *)(unsigned long)bpf_get_prandom_u32();

/*
 * Testing aid (BDT_TEST_OE_IOERR=INO, src/live/session.cpp): the removal of a
 * DIRECT ordered extent that starts at file offset 0 of an inode numbered
 * test_ioerr_ino or above is reported failed (IOERR in its flags), as when
 * btrfs_finish_ordered_io fails after the write returned:
 * what a healthy kernel never does, for tests/integration/
 * test_acked_ioerr_trigger.sh. 0: off (the check is dropped at load).
 */
const volatile __u64 test_ioerr_ino = 0;

/*
 * Testing aid (BDT_TEST_OE_TAKEN=N, src/live/session.cpp): the first N slots
 * of every DIRECT ordered extent's probe sequence in the table of extents in
 * flight (bpf/ordered.bpf.h, oe_track_add) count as taken, as when other
 * extents hash there: tests/integration/test_acked_ioerr_trigger.sh. 0: off.
 */
const volatile __u32 test_oe_taken = 0;

/*
 * Testing aid (BDT_TEST_END_SPIN_US=N, src/live/session.cpp): a write's
 * completion that keeps its call with its ordered extents (acked_ioerr,
 * bpf/dio.bpf.h) spins N us between its "emitted?" check and keeping the
 * call: the window in which its extent's failure on another CPU races it
 * (ordered.bpf.h, "The write's return and the extent's failure") is that
 * much wider. tests/integration/test_acked_ioerr_trigger.sh. 0: off.
 */
const volatile __u32 test_end_spin_us = 0;

#endif /* BDT_CONFIG_BPF_H */
