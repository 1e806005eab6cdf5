/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: emission. The ring buffer, the per-CPU lost-record
 * counters, the flight recorder's reserve/submit (docs/flight-recorder.md),
 * the fields every record carries (task, identity) and error-origin stacks.
 */
#ifndef BDT_EMISSION_BPF_H
#define BDT_EMISSION_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Records dropped because the ring was full, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lost SEC(".maps");

/* Records made, per CPU: each one either reaches the ring buffer (and is read
 * by the tracer) or is counted in `lost`, so made = read + lost (checked by
 * tests/integration/test_fault_lost.sh). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} made SEC(".maps");

/* Error origins: kernel stacks (see stack_of), symbolized in userspace. */
#define BDT_STACK_DEPTH 32
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1024);
	__type(key, u32);
	__uint(value_size, BDT_STACK_DEPTH * sizeof(u64));
} stacks SEC(".maps");

/* Flight recorder (events.h, docs/flight-recorder.md): ncpus * rec_slots slots,
 * sized by userspace before load; mmap-able so a dump reads it in place. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bdt_rec_slot);
} recorder SEC(".maps");

/* Records written to the recorder so far, per CPU (the next sequence number - 1). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} rec_head SEC(".maps");

/* Written by userspace only (struct bdt_rec_meta), pinned with the recorder. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bdt_rec_meta);
} rec_meta SEC(".maps");

/* Per-CPU slots, but a program nesting on this CPU (an irq-time completion)
 * may update the same one: atomic adds keep the counts exact. */
static __always_inline void count_in(void *map)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(map, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void count_lost(void)
{
	count_in(&lost);
}

/*
 * Waking the consumer costs an irq_work (a self-IPI, in a guest a VM exit) and a
 * wakeup: per record it would cost more than making the record. Each CPU wakes it
 * once per wake_mask + 1 records made there (counted by `made`), a power of two
 * the loader sizes so that all CPUs' unannounced records fill a small part of
 * the ring (src/live/ring.cpp: 1024 on 2 CPUs with 8 MiB); the consumer also
 * drains the ring on a short timer (the live loop polls with a 100 ms timeout,
 * src/cli/live_loop.cpp), so no record waits longer than that. (Waking on every
 * record while 64 KiB were queued raised one irq_work per record until the
 * consumer caught up: ~1 us of BPF time per I/O with --events,
 * docs/performance.md.)
 */
static __always_inline u64 wake_flag(void)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&made, &zero);

	return n && (*n & wake_mask) == 0 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/*
 * With the flight recorder on (rec_slots != 0, a load-time constant, so the
 * verifier keeps one of the two paths), a record is built in place in this
 * CPU's next recorder slot and then copied to the ring buffer: the recorder
 * never depends on the ring having room or on anybody consuming it. Slot
 * claims are atomic, so a program nesting on this CPU (an irq-time
 * completion) takes the next slot. Recorder off: built in the ring buffer.
 */
static __always_inline struct bdt_raw_event *rec_reserve(void)
{
	u32 zero = 0, key, cpu;
	u64 *head = bpf_map_lookup_elem(&rec_head, &zero);
	struct bdt_rec_slot *slot;
	u64 seq;

	if (!head)
		return 0;
	seq = __sync_fetch_and_add(head, 1) + 1;
	cpu = bpf_get_smp_processor_id();
	key = cpu * rec_slots + (u32)((seq - 1) % rec_slots);
	slot = bpf_map_lookup_elem(&recorder, &key);
	if (!slot)
		return 0;
	/* seq_end first: a concurrent reader of the old record sees the change */
	__sync_lock_test_and_set(&slot->seq_end, seq);
	/* what makes the slot readable from raw memory (events.h) */
	slot->magic = BDT_REC_SLOT_MAGIC;
	slot->cpu = cpu;
	slot->instance = rec_instance;
	return &slot->ev;
}

static __always_inline void bdt_submit(void *e)
{
	u64 wake = wake_flag();

	if (rec_slots) {
		struct bdt_rec_slot *slot = e - __builtin_offsetof(struct bdt_rec_slot, ev);

		slot->check = bdt_rec_check(slot->instance, slot->cpu, slot->seq_end,
					    (const bdt_u64_alias *)&slot->ev);
		/* seq last (xchg: ordered after the record's and the check's stores) */
		__sync_lock_test_and_set(&slot->seq, slot->seq_end);
		if (bpf_ringbuf_output(&events, e, sizeof(struct bdt_raw_event), wake))
			count_lost();
		return;
	}
	bpf_ringbuf_submit(e, wake);
}

/* A zeroed record of this type, source and time, to fill and bdt_submit(). */
static __always_inline struct bdt_raw_event *rec_new(u16 type, u8 src, u64 ts)
{
	struct bdt_raw_event *e;

	count_in(&made);
	if (rec_slots)
		e = rec_reserve();
	else
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->source = src;
	e->ts_ns = ts;
	return e;
}

/* An event happens and its record is made now (counted in event_counts). A
 * record held by the lazy emission is counted when held (count_event) and
 * made later with rec_new(). */
static __always_inline struct bdt_raw_event *reserve_src(u16 type, u8 src)
{
	count_event(type);
	return rec_new(type, src, bpf_ktime_get_ns());
}

static __always_inline struct bdt_raw_event *reserve(u16 type)
{
	return reserve_src(type, BDT_SRC_TRACEPOINT);
}

/* Kernel stack of the current context into `stacks`; id + 1, 0 when none. */
static __always_inline u32 stack_of(void *ctx)
{
	long id = bpf_get_stackid(ctx, &stacks, 0);

	return id >= 0 ? (u32)id + 1 : 0;
}

static __always_inline void fill_task(struct bdt_raw_event *e)
{
	u64 id = bpf_get_current_pid_tgid();

	e->pid = id >> 32;
	e->tid = (u32)id;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

static __always_inline void put_ident(struct bdt_raw_event *e, const struct ident *id)
{
	__builtin_memcpy(e->fsid, id->fsid, BDT_FSID_LEN);
	e->dev = id->dev;
	e->sb_dev = id->sb_dev;
	e->ino = id->ino;
	e->root = id->root;
	if (id->ino)
		e->flags |= BDT_F_HAS_DEV;
}

#endif /* BDT_EMISSION_BPF_H */
