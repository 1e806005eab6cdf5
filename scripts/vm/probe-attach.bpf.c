// SPDX-License-Identifier: GPL-2.0
/* Empty fentry/fexit/kprobe/kretprobe programs. scripts/vm/probe-attach.c
 * retargets them at run time to answer "can this kernel attach X here?". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("fentry/placeholder")
int probe_fentry(void *ctx) { return 0; }

SEC("fexit/placeholder")
int probe_fexit(void *ctx) { return 0; }

SEC("kprobe/placeholder")
int probe_kprobe(void *ctx) { return 0; }

SEC("kretprobe/placeholder")
int probe_kretprobe(void *ctx) { return 0; }
