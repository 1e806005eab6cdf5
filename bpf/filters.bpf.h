/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: filters (set by userspace before load / attach).
 *   filter_pid   tgid must be in pid_filter (covers every thread, io_uring
 *                workers included: they share the tgid)
 *   filter_comm  the thread's or its process leader's comm in comm_filter
 *   filter_cgroup the task is in the cgroup (v2) in cgroup_filter[0] or below
 *   filter_sb    the superblock dev_t (kernel encoding) of the one btrfs
 *                filesystem to watch (0: all)
 * Ordered-extent events run in btrfs workers, so with a task filter they pass
 * only for inodes a filtered task touched (touched_inodes), and always the fs
 * filter. Relocation events pass by filesystem only.
 */
#ifndef BDT_FILTERS_BPF_H
#define BDT_FILTERS_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} cgroup_filter SEC(".maps");

struct comm_key {
	char c[BDT_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct comm_key);
	__type(value, u8);
} comm_filter SEC(".maps");

struct inode_key {
	u64 sb_dev;
	u64 ino;
};

/* Inodes filtered tasks did DIO on / looked up extents of (task filters only). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct inode_key);
	__type(value, u8);
} touched_inodes SEC(".maps");

static __always_inline bool task_pass(void)
{
	if (filter_cgroup && bpf_current_task_under_cgroup(&cgroup_filter, 0) != 1)
		return false;
	if (filter_pid) {
		u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (!bpf_map_lookup_elem(&pid_filter, &tgid))
			return false;
	}
	if (filter_comm) {
		struct comm_key k = {};
		struct task_struct *t = (void *)bpf_get_current_task();

		bpf_get_current_comm(k.c, sizeof(k.c));
		if (bpf_map_lookup_elem(&comm_filter, &k))
			return true;
		/* threads renamed by the program (io workers, "CPU 0/KVM"): match the process */
		__builtin_memset(&k, 0, sizeof(k));
		BPF_CORE_READ_STR_INTO(&k.c, t, group_leader, comm);
		if (!bpf_map_lookup_elem(&comm_filter, &k))
			return false;
	}
	return true;
}

static __always_inline bool task_filtered(void)
{
	return filter_pid || filter_comm || filter_cgroup;
}

static __always_inline bool fs_pass(u64 sb_dev)
{
	return filter_sb == 0 || sb_dev == filter_sb;
}

static __always_inline void touch_inode(const struct ident *id)
{
	struct inode_key k = { .sb_dev = id->sb_dev, .ino = id->ino };
	u8 one = 1;

	if (task_filtered())
		bpf_map_update_elem(&touched_inodes, &k, &one, BPF_ANY);
}

static __always_inline bool inode_pass_k(u64 sb_dev, u64 ino)
{
	struct inode_key k = { .sb_dev = sb_dev, .ino = ino };

	if (!fs_pass(sb_dev))
		return false;
	if (!task_filtered())
		return true;
	return bpf_map_lookup_elem(&touched_inodes, &k) != 0;
}

static __always_inline bool inode_pass(const struct ident *id)
{
	return inode_pass_k(id->sb_dev, id->ino);
}

#endif /* BDT_FILTERS_BPF_H */
