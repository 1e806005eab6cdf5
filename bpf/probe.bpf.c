// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * btrfs-dio-trace: capability probes for `doctor`.
 *
 * Empty programs the doctor loads and attaches for a moment to learn whether
 * this kernel allows fentry and kprobes on btrfs functions; the attach target
 * is chosen at run time (bpf_program__set_attach_target / attach_kprobe).
 * Nothing here ever emits data, and the doctor detaches everything at once.
 */
#include "kernel_types.h"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("fentry/btrfs_get_extent")
int probe_fentry(void *ctx)
{
	return 0;
}

SEC("kprobe/btrfs_get_extent")
int probe_kprobe(void *ctx)
{
	return 0;
}
