// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * btrfs-dio-trace: capability probes for `doctor`.
 *
 * An empty kprobe program the loader attaches for a moment to learn whether
 * this kernel allows kprobes on a btrfs function; the target is chosen at run
 * time (attach_kprobe). The fentry probe is two instructions loaded without an
 * object (src/loader/probe.cpp). Nothing here ever emits data, and everything
 * is detached at once.
 */
#include "kernel_types.h"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe/btrfs_get_extent")
int probe_kprobe(void *ctx)
{
	return 0;
}
