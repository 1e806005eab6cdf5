/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: traffic counts. What the summary, --metrics-addr and
 * --qemu report about DIO traffic and events is counted here, per CPU,
 * whether or not a record is made (events.h: struct bdt_dio_count,
 * bdt_event_count, bdt_lat_val): requests, bytes, errors, -EAGAIN attempts,
 * short writes and latency per filesystem and direction; events by type;
 * and with --qemu the same per (process, file, direction) in lat_hist.
 */
#ifndef BDT_COUNTS_BPF_H
#define BDT_COUNTS_BPF_H

#include "dio_outcome.h"

/* The filesystems counted apart, claimed in the order they are seen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BDT_FS_SLOTS);
	__type(key, u32);
	__type(value, struct bdt_fs_slot);
} fs_slots SEC(".maps");

/* [fs slot * BDT_DIRS + direction]; slot BDT_FS_SLOTS: the later filesystems. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (BDT_FS_SLOTS + 1) * BDT_DIRS);
	__type(key, u32);
	__type(value, struct bdt_dio_count);
} dio_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bdt_event_count);
} event_counts SEC(".maps");

/* --qemu: counts and latency histograms by (tgid, dev, ino, direction), see
 * events.h. A plain hash (not LRU): a full map drops new keys and counts
 * them in lat_overflow[0] instead of silently evicting a VM's history.
 * Userspace sizes it (max_entries) and deletes the keys of processes that
 * exited. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bdt_lat_key);
	__type(value, struct bdt_lat_val);
} lat_hist SEC(".maps");

/* All zeros, never written: the initial value of a new lat_hist entry
 * (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bdt_lat_val);
} lat_zero SEC(".maps");

/* [0]: samples dropped because lat_hist was full. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lat_overflow SEC(".maps");

static __always_inline struct bdt_event_count *event_count(void)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(&event_counts, &zero);
}

/* An event of this type happened (called where the record is decided); c:
 * this CPU's event_count(), NULL: none. */
static __always_inline void count_event_in(struct bdt_event_count *c, u16 type)
{
	if (c)
		c->events[type & (BDT_EV_SLOTS - 1)] += 1; /* per-CPU slot: no other writer */
}

static __always_inline void count_event(u16 type)
{
	count_event_in(event_count(), type);
}

/* The slot of a filesystem in dio_counts: the first BDT_FS_SLOTS seen get
 * their own (claimed with a compare-and-swap), later ones share the last. */
static __always_inline u32 fs_slot_of(u64 sb_dev, const u8 *fsid)
{
#pragma unroll
	for (u32 i = 0; i < BDT_FS_SLOTS; i++) {
		u32 k = i;
		struct bdt_fs_slot *s = bpf_map_lookup_elem(&fs_slots, &k);
		u64 old;

		if (!s)
			break;
		old = s->sb_dev;
		if (old == sb_dev)
			return i;
		if (old)
			continue;
		old = __sync_val_compare_and_swap(&s->sb_dev, 0, sb_dev);
		if (old == 0)
			__builtin_memcpy(s->fsid, fsid, BDT_FSID_LEN);
		if (old == 0 || old == sb_dev)
			return i;
	}
	return BDT_FS_SLOTS;
}

static __always_inline u32 lat_bucket(u64 v)
{
	u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r < BDT_LAT_BUCKETS ? r : BDT_LAT_BUCKETS - 1;
}

/* A request completed: its filesystem's and direction's counts (this CPU). */
static __always_inline void count_dio_end(u32 fs_slot, u32 dir, const struct bdt_dio_outcome *o,
					  u64 lat, bool lat_known)
{
	u32 k = (fs_slot <= BDT_FS_SLOTS ? fs_slot : BDT_FS_SLOTS) * BDT_DIRS + (dir < BDT_DIRS ? dir : 0);
	struct bdt_dio_count *c = bpf_map_lookup_elem(&dio_counts, &k);

	if (!c)
		return;
	if (o->again) {
		c->again += 1;
		return;
	}
	c->requests += 1;
	c->bytes += o->bytes;
	if (o->error)
		c->errors += 1;
	if (o->short_write)
		c->short_writes += 1;
	if (lat_known) {
		u32 b = lat_bucket(lat);

		if (b < BDT_LAT_BUCKETS)
			c->lat[b] += 1;
		c->lat_sum_ns += lat;
	}
}

/* --qemu: the value of (pid, write, dev, ino) in lat_hist, created empty;
 * NULL (and counted in lat_overflow) when the map is full. */
static __always_inline struct bdt_lat_val *lat_entry(u32 pid, u32 write, u64 dev, u64 ino)
{
	struct bdt_lat_key k = { .pid = pid, .write = write, .dev = dev, .ino = ino };
	struct bdt_lat_val *v = bpf_map_lookup_elem(&lat_hist, &k);
	u32 zero = 0;

	if (v)
		return v;
	v = bpf_map_lookup_elem(&lat_zero, &zero);
	if (!v)
		return 0;
	bpf_map_update_elem(&lat_hist, &k, v, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&lat_hist, &k);
	if (!v) {
		u64 *n = bpf_map_lookup_elem(&lat_overflow, &zero);

		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return v;
}

/* --qemu: a traced request completed (any context: the submitter's thread,
 * irq, a worker): the submitter's counts and latency for this file. */
static __always_inline void count_qemu_dio(u32 pid, bool write, u64 dev, u64 ino,
					   const struct bdt_dio_outcome *o, u64 lat)
{
	struct bdt_lat_val *v;
	u32 b;

	if (!lat_hist_on)
		return;
	v = lat_entry(pid, write ? 1 : 0, dev, ino);
	if (!v)
		return;
	if (o->again) {
		__sync_fetch_and_add(&v->again, 1);
		return;
	}
	__sync_fetch_and_add(&v->requests, 1);
	__sync_fetch_and_add(&v->bytes, o->bytes);
	if (o->error)
		__sync_fetch_and_add(&v->errors, 1);
	if (o->short_write)
		__sync_fetch_and_add(&v->short_writes, 1);
	b = lat_bucket(lat);
	if (b < BDT_LAT_BUCKETS)
		__sync_fetch_and_add(&v->slots[b], 1);
	__sync_fetch_and_add(&v->sum_ns, lat);
	if (lat > v->max_ns)
		v->max_ns = lat;
}

/* --qemu: an ordered extent written through the page cache (no DIRECT flag). */
static __always_inline void count_qemu_buffered(u64 dev, u64 ino, u64 len)
{
	struct bdt_lat_val *v;

	if (!lat_hist_on)
		return;
	v = lat_entry(0, BDT_LAT_BUFFERED, dev, ino);
	if (!v)
		return;
	__sync_fetch_and_add(&v->requests, 1);
	__sync_fetch_and_add(&v->bytes, len);
}

#endif /* BDT_COUNTS_BPF_H */
