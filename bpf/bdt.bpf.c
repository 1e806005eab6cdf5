// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * btrfs-dio-trace: the tracepoint backend.
 *
 * One object, one ring buffer. Every hook exists twice: as tp_btf (preferred)
 * and as raw_tp (fallback when the kernel has the tracepoint but not its
 * btf_trace_* type); the loader (src/loader/loader.cpp) turns autoload on for
 * exactly one of them, or none when the tracepoint is missing. Both variants
 * share one handler that reads the arguments from the u64 context array and
 * every kernel field through CO-RE (bdt_core.h), so no field offset is
 * compiled in.
 *
 * Filters (set by userspace before load / attach):
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
#include "bdt_core.h"
#include <linux/bpf.h>
#include <linux/btrfs.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BTRFS_MAGIC 0x9123683EUL
#define BDT_VM_WRITE 0x00000002UL
#define BDT_VM_SHARED 0x00000008UL
#define BDT_PAGE_SHIFT 12
#define BDT_INODE_NODATASUM (1U << 0)
#define BDT_IOMAP_DIO_PARTIAL (1U << 2)
#define BDT_EM_LAST_BYTE ((u64)-4)

/* ---- configuration (rodata, set before load) -------------------------------- */
const volatile bool filter_pid = false;
const volatile bool filter_comm = false;
const volatile bool filter_cgroup = false; /* task must be in cgroup_filter[0] or below */
const volatile __u32 filter_sb = 0;       /* kernel dev_t of the watched superblock */
const volatile __u32 em_compress_mask = 0; /* EXTENT_FLAG_COMPRESS_* of this kernel */
const volatile __u32 nr_ioctl = 16;        /* x86_64 __NR_ioctl (raw sys_enter fallback) */
const volatile __u32 rec_slots = 0;        /* flight recorder slots per CPU (0: off) */
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
const volatile __u32 oe_ioerr_bit = 64;    /* BTRFS_ORDERED_IOERR (64: unknown) */

/* ---- maps ------------------------------------------------------------------- */
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

/* Identity of a file as the events carry it. */
struct ident {
	u8 fsid[BDT_FSID_LEN];
	u64 dev;
	u64 sb_dev;
	u64 ino;
	u64 root;
};

/* A DIO request between iomap_dio_rw_begin and iomap_dio_complete, by kiocb. */
struct dio_req {
	struct ident id;
	u64 pos;
	u32 pid;
	u32 tid;
	char comm[BDT_COMM_LEN];
	u32 flags; /* BDT_F_WRITE | BDT_F_AIO */
	u32 pad;
	u64 ts; /* bpf_ktime_get_ns() at begin: latency at completion (lat_hist) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);
	__type(value, struct dio_req);
} inflight_dio SEC(".maps");

/* Latency histograms by (tgid, dev, ino, direction), see events.h. A plain
 * hash (not LRU): a full map drops new keys and counts them in
 * lat_overflow[0] instead of silently evicting a VM's history. Userspace
 * sizes it (max_entries) and deletes the keys of processes that exited. */
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

/* [0]: latency samples dropped because lat_hist was full. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lat_overflow SEC(".maps");

/* The inode this thread is submitting DIO for (em_exist has no inode). */
struct cur_req {
	struct ident id;
	u64 tree_root; /* &BTRFS_I(inode)->extent_tree's rb_root, to verify em_exist */
	u32 em_exist_seen; /* em_exist fired in this thread since its last get_extent record */
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct cur_req);
} cur_dio SEC(".maps");

/* Which source reports an ioctl's begin/end: the syscall hooks, or the function
 * hooks on btrfs_ioctl_send()/btrfs_balance() (one source per call, never both). */
enum { IOC_OWNER_NONE = 0, IOC_OWNER_SYSCALL, IOC_OWNER_FN, IOC_OWNER_FN_DONE };

struct ioctl_req {
	struct ident id;
	u64 raw_cmd;
	u32 fd;
	u32 cmd;
	u32 owner;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, struct ioctl_req);
} inflight_ioctl SEC(".maps");

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

/* ---- helpers ------------------------------------------------------------------ */
static __always_inline void count_lost(void)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		*n += 1; /* per-CPU slot: no other writer */
}

/*
 * Submitting with a wakeup per record costs an irq_work and a consumer wakeup
 * per event, which dominates at hundreds of thousands of events per second.
 * Wake the consumer only once a batch is queued; it also drains the ring on a
 * short timer (src/live/live.cpp), so no record waits longer than that.
 */
#define BDT_WAKEUP_BYTES (64 * 1024)

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
	u32 zero = 0, key;
	u64 *head = bpf_map_lookup_elem(&rec_head, &zero);
	struct bdt_rec_slot *slot;
	u64 seq;

	if (!head)
		return 0;
	seq = __sync_fetch_and_add(head, 1) + 1;
	key = bpf_get_smp_processor_id() * rec_slots + (u32)((seq - 1) % rec_slots);
	slot = bpf_map_lookup_elem(&recorder, &key);
	if (!slot)
		return 0;
	/* seq_end first: a concurrent reader of the old record sees the change */
	__sync_lock_test_and_set(&slot->seq_end, seq);
	return &slot->ev;
}

static __always_inline void bdt_submit(void *e)
{
	long avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	u64 wake = avail >= BDT_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	if (rec_slots) {
		struct bdt_rec_slot *slot = e - __builtin_offsetof(struct bdt_rec_slot, ev);

		/* seq last (xchg: ordered after the record's stores) */
		__sync_lock_test_and_set(&slot->seq, slot->seq_end);
		if (bpf_ringbuf_output(&events, e, sizeof(struct bdt_raw_event), wake))
			count_lost();
		return;
	}
	bpf_ringbuf_submit(e, wake);
}

static __always_inline struct bdt_raw_event *reserve_src(u16 type, u8 src)
{
	struct bdt_raw_event *e;

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
	e->ts_ns = bpf_ktime_get_ns();
	return e;
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

static __always_inline bool is_btrfs_sb(struct super_block *sb)
{
	return sb && BPF_CORE_READ(sb, s_magic) == BTRFS_MAGIC;
}

static __always_inline struct btrfs_inode *btrfs_i(struct inode *inode)
{
	return (struct btrfs_inode *)((char *)inode - bpf_core_field_offset(struct btrfs_inode, vfs_inode));
}

static __always_inline void read_fsid(u8 *dst, struct btrfs_fs_info *fs_info)
{
	struct btrfs_fs_devices *fsd = BPF_CORE_READ(fs_info, fs_devices);

	if (fsd)
		bpf_probe_read_kernel(dst, BDT_FSID_LEN, &fsd->fsid);
}

/* Identity of a btrfs inode: fsid, subvolume anon dev (= st_dev), sb dev, ino, root. */
static __always_inline void btrfs_ident(struct ident *id, const struct btrfs_inode *bi)
{
	struct btrfs_root *root = BPF_CORE_READ(bi, root);
	struct btrfs_fs_info *fs_info = BPF_CORE_READ(root, fs_info);

	read_fsid(id->fsid, fs_info);
	id->dev = BPF_CORE_READ(root, anon_dev);
	id->sb_dev = BPF_CORE_READ(bi, vfs_inode.i_sb, s_dev);
	id->ino = BPF_CORE_READ(bi, vfs_inode.i_ino);
	id->root = BPF_CORE_READ(root, root_key.objectid);
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

static __always_inline void touch_inode(const struct ident *id)
{
	struct inode_key k = { .sb_dev = id->sb_dev, .ino = id->ino };
	u8 one = 1;

	if (task_filtered())
		bpf_map_update_elem(&touched_inodes, &k, &one, BPF_ANY);
}

static __always_inline bool inode_pass(const struct ident *id)
{
	struct inode_key k = { .sb_dev = id->sb_dev, .ino = id->ino };

	if (!fs_pass(id->sb_dev))
		return false;
	if (!task_filtered())
		return true;
	return bpf_map_lookup_elem(&touched_inodes, &k) != 0;
}

/* Address of the inode's extent map tree root pointer (identity of the tree). */
static __always_inline u64 em_tree_root(const struct btrfs_inode *bi)
{
	if (bpf_core_field_exists(bi->extent_tree.root))
		return (u64)&bi->extent_tree.root.rb_node;
	return (u64)&((struct extent_map_tree___cached *)&bi->extent_tree)->map.rb_root.rb_node;
}

/*
 * Which tree is this extent map in? Walk up the rb-tree parents to the root
 * node and return the root's address; 0 if the walk does not end (bounded:
 * 2*log2(n+1) levels cover 2^24 maps).
 */
#define BDT_RB_MAX_DEPTH 48
static __always_inline u64 em_root_node(const struct extent_map *em)
{
	const struct rb_node *node = &em->rb_node;

#pragma unroll
	for (int i = 0; i < BDT_RB_MAX_DEPTH; i++) {
		unsigned long pc = BPF_CORE_READ(node, __rb_parent_color);
		const struct rb_node *parent = (const struct rb_node *)(pc & ~3UL);

		if (!parent)
			return (u64)node;
		node = parent;
	}
	return 0;
}

/* ---- DIO begin ---------------------------------------------------------------- */
struct vma_info {
	u64 addr;
	u64 ino;
	u64 dev;
	u64 off;
	u32 flags;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_info *vi = data;
	unsigned long vm_flags = BPF_CORE_READ(vma, vm_flags);
	struct file *f = BPF_CORE_READ(vma, vm_file);

	vi->flags |= BDT_F_BUF_FOUND;
	if (vm_flags & BDT_VM_SHARED)
		vi->flags |= BDT_F_BUF_SHARED;
	if (vm_flags & BDT_VM_WRITE)
		vi->flags |= BDT_F_BUF_WRITABLE;
	if (f) {
		struct inode *inode = BPF_CORE_READ(f, f_inode);
		struct super_block *sb = BPF_CORE_READ(inode, i_sb);

		vi->ino = BPF_CORE_READ(inode, i_ino);
		if (is_btrfs_sb(sb))
			vi->dev = BPF_CORE_READ(btrfs_i(inode), root, anon_dev);
		else
			vi->dev = BPF_CORE_READ(sb, s_dev);
		vi->off = (BPF_CORE_READ(vma, vm_pgoff) << BDT_PAGE_SHIFT) +
			  (vi->addr - BPF_CORE_READ(vma, vm_start));
	}
	return 0;
}

static __always_inline u64 iter_user_addr(struct iov_iter *iter)
{
	u8 type = BPF_CORE_READ(iter, iter_type);

	if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) &&
	    type == bpf_core_enum_value(enum iter_type, ITER_UBUF))
		return (u64)BPF_CORE_READ(iter, ubuf);
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		const struct iovec *iov;

		if (bpf_core_field_exists(iter->__iov))
			iov = BPF_CORE_READ(iter, __iov);
		else
			iov = BPF_CORE_READ((struct iov_iter___iov *)iter, iov);
		return (u64)BPF_CORE_READ(iov, iov_base);
	}
	return 0;
}

static __always_inline bool iter_is_write(struct iov_iter *iter)
{
	/* data_source: the iterator is the source of data, i.e. a write. */
	if (bpf_core_field_exists(iter->data_source))
		return BPF_CORE_READ(iter, data_source);
	return BPF_CORE_READ((struct iov_iter___old *)iter, type) & 1;
}

static __always_inline int on_dio_begin(u64 *ctx, u8 src)
{
	struct kiocb *iocb = (void *)ctx[0];
	struct iov_iter *iter = (void *)ctx[1];
	u32 dio_flags = (u32)ctx[2];
	u64 done_before = ctx[3];
	struct inode *inode = BPF_CORE_READ(iocb, ki_filp, f_inode);
	struct super_block *sb = BPF_CORE_READ(inode, i_sb);
	struct btrfs_inode *bi;
	struct bdt_raw_event *e;
	struct dio_req req = {};
	struct vma_info vi = {};
	u64 key = (u64)iocb;
	u32 bflags;

	if (!is_btrfs_sb(sb))
		return 0;
	if (!fs_pass(BPF_CORE_READ(sb, s_dev)) || !task_pass())
		return 0;
	bi = btrfs_i(inode);
	btrfs_ident(&req.id, bi);
	touch_inode(&req.id);

	if (iter_is_write(iter))
		req.flags |= BDT_F_WRITE;
	if (BPF_CORE_READ(iocb, ki_complete))
		req.flags |= BDT_F_AIO;
	req.pos = BPF_CORE_READ(iocb, ki_pos);
	{
		u64 t = bpf_get_current_pid_tgid();

		req.pid = t >> 32;
		req.tid = (u32)t;
	}
	bpf_get_current_comm(req.comm, sizeof(req.comm));
	req.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&inflight_dio, &key, &req, BPF_ANY);
	{
		struct cur_req cr = { .id = req.id, .tree_root = em_tree_root(bi) };

		bpf_map_update_elem(&cur_dio, &req.tid, &cr, BPF_ANY);
	}

	vi.addr = iter_user_addr(iter);
	/* the buffer's VMA matters for writes only (self-mmap, shared buffers) */
	if (vi.addr && (all_events || (req.flags & BDT_F_WRITE)))
		bpf_find_vma(bpf_get_current_task_btf(), vi.addr, vma_cb, &vi, 0);

	e = reserve_src(BDT_EV_DIO_BEGIN, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &req.id);
	e->flags |= req.flags | vi.flags;
	bflags = BPF_CORE_READ(bi, flags);
	if (bflags & BDT_INODE_NODATASUM)
		e->flags |= BDT_F_NODATASUM;
	if (dio_flags & BDT_IOMAP_DIO_PARTIAL)
		e->flags |= BDT_F_PARTIAL;
	e->u.dio.pos = req.pos;
	e->u.dio.count = BPF_CORE_READ(iter, count);
	e->u.dio.done_before = done_before;
	e->u.dio.dio_flags = dio_flags;
	e->u.dio.buf_addr = vi.addr;
	e->u.dio.buf_file_ino = vi.ino;
	e->u.dio.buf_file_dev = vi.dev;
	e->u.dio.buf_file_off = vi.off;
	bdt_submit(e);
	return 0;
}

/* iomap_dio_rw_queued: an async request was submitted; this thread is done with it. */
static __always_inline int on_dio_queued(u64 *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&cur_dio, &tid);
	return 0;
}

/* ---- DIO end ------------------------------------------------------------------ */
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

/* A traced request completed (any context: the submitter's thread, irq, a
 * worker): add its latency to the submitter's histogram for this file. */
static __always_inline void lat_record(const struct dio_req *req, s64 ret, s32 error)
{
	struct bdt_lat_key k = {};
	struct bdt_lat_val *v;
	u32 zero = 0, b;
	u64 now = bpf_ktime_get_ns(), lat;

	/* -EAGAIN: io_uring's nowait attempt, retried from io-wq: not a request */
	if (!lat_hist_on || !req->ts || ret == -11 || (ret <= 0 && error == -11))
		return;
	lat = now > req->ts ? now - req->ts : 0;
	k.pid = req->pid;
	k.write = (req->flags & BDT_F_WRITE) ? 1 : 0;
	k.dev = req->id.dev;
	k.ino = req->id.ino;
	v = bpf_map_lookup_elem(&lat_hist, &k);
	if (!v) {
		struct bdt_lat_val *z = bpf_map_lookup_elem(&lat_zero, &zero);

		if (!z)
			return;
		bpf_map_update_elem(&lat_hist, &k, z, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&lat_hist, &k);
		if (!v) {
			u64 *n = bpf_map_lookup_elem(&lat_overflow, &zero);

			if (n)
				__sync_fetch_and_add(n, 1);
			return;
		}
	}
	b = lat_bucket(lat);
	if (b < BDT_LAT_BUCKETS)
		__sync_fetch_and_add(&v->slots[b], 1);
	__sync_fetch_and_add(&v->sum_ns, lat);
	if (lat > v->max_ns)
		v->max_ns = lat;
}

static __always_inline int on_dio_complete(u64 *ctx, u8 src, void *pctx)
{
	struct kiocb *iocb = (void *)ctx[0];
	s32 error = (s32)ctx[1];
	s64 ret = (s64)ctx[2];
	u64 key = (u64)iocb;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct dio_req *req = bpf_map_lookup_elem(&inflight_dio, &key);
	struct bdt_raw_event *e;

	bpf_map_delete_elem(&cur_dio, &tid);
	if (req) {
		/* Completion may run in irq or a worker: report the submitter. */
		e = reserve_src(BDT_EV_DIO_END, src);
		if (e) {
			/* error origin of a traced request that failed with EIO / EEXIST */
			if (ret == -5 || ret == -17 || error == -5 || error == -17)
				e->stack_id = stack_of(pctx);
			e->pid = req->pid;
			e->tid = req->tid;
			__builtin_memcpy(e->comm, req->comm, BDT_COMM_LEN);
			put_ident(e, &req->id);
			e->flags |= req->flags | BDT_F_DIR_KNOWN;
			/* as the tracepoint prints it: ki_pos, already advanced by the bytes done */
			e->u.dio.pos = BPF_CORE_READ(iocb, ki_pos);
			e->u.dio.ret = ret;
			e->u.dio.error = error;
			bdt_submit(e);
		}
		lat_record(req, ret, error);
		bpf_map_delete_elem(&inflight_dio, &key);
		return 0;
	}
	/* Begin not seen (started before tracing, or filtered out). */
	if (task_filtered())
		return 0;
	{
		struct inode *inode = BPF_CORE_READ(iocb, ki_filp, f_inode);
		struct super_block *sb = BPF_CORE_READ(inode, i_sb);
		struct ident id = {};

		if (!is_btrfs_sb(sb) || !fs_pass(BPF_CORE_READ(sb, s_dev)))
			return 0;
		btrfs_ident(&id, btrfs_i(inode));
		e = reserve_src(BDT_EV_DIO_END, src);
		if (!e)
			return 0;
		fill_task(e);
		put_ident(e, &id);
		e->u.dio.pos = BPF_CORE_READ(iocb, ki_pos);
		e->u.dio.ret = ret;
		e->u.dio.error = error;
		bdt_submit(e);
	}
	return 0;
}

/* ---- extent maps -------------------------------------------------------------- */
static __always_inline u64 em_block_start(const struct extent_map *em)
{
	if (bpf_core_field_exists(em->disk_bytenr)) {
		u64 disk = BPF_CORE_READ(em, disk_bytenr);
		u32 fl = BPF_CORE_READ(em, flags);

		if (disk >= BDT_EM_LAST_BYTE || (fl & em_compress_mask))
			return disk;
		return disk + BPF_CORE_READ(em, offset);
	}
	return BPF_CORE_READ((struct extent_map___old *)em, block_start);
}

static __always_inline u32 em_flags(const struct extent_map *em)
{
	if (bpf_core_field_size(em->flags) == 4)
		return BPF_CORE_READ(em, flags);
	return (u32)BPF_CORE_READ((struct extent_map___old *)em, flags);
}

static __always_inline int on_get_extent(u64 *ctx)
{
	const struct btrfs_inode *bi = (void *)ctx[1];
	const struct extent_map *em = (void *)ctx[2];
	struct bdt_raw_event *e;
	struct ident id = {};
	bool wanted = all_events;

	if (!wanted) {
		u32 tid = (u32)bpf_get_current_pid_tgid();
		struct cur_req *cur = bpf_map_lookup_elem(&cur_dio, &tid);

		if (cur && cur->em_exist_seen) {
			cur->em_exist_seen = 0;
			wanted = true;
		}
		if (!wanted && !task_filtered())
			return 0;
	}
	btrfs_ident(&id, bi);
	if (!fs_pass(id.sb_dev) || !task_pass())
		return 0;
	touch_inode(&id);
	if (!wanted)
		return 0;
	e = reserve(BDT_EV_GET_EXTENT);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->phase = BDT_PHASE_EXIT;
	/* The tracepoint fires with the resulting map only; the requested range is unknown. */
	e->u.ext.em_start = BPF_CORE_READ(em, start);
	e->u.ext.em_len = BPF_CORE_READ(em, len);
	e->u.ext.start = e->u.ext.em_start;
	e->u.ext.len = e->u.ext.em_len;
	e->u.ext.block_start = em_block_start(em);
	e->u.ext.em_flags = em_flags(em);
	bdt_submit(e);
	return 0;
}

static __always_inline int on_em_exist(u64 *ctx)
{
	struct btrfs_fs_info *fs_info = (void *)ctx[0];
	const struct extent_map *existing = (void *)ctx[1];
	const struct extent_map *map = (void *)ctx[2];
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u64 sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	struct cur_req *cur;
	struct bdt_raw_event *e;
	u64 root_node = 0, tree_root_node = 0;

	if (!fs_pass(sb_dev) || !task_pass())
		return 0;
	cur = bpf_map_lookup_elem(&cur_dio, &tid);
	if (cur)
		cur->em_exist_seen = 1; /* the enclosing get_extent's record is wanted */
	if (cur && cur->id.sb_dev == sb_dev && existing) {
		/* Attribute to this thread's DIO inode only if the existing map is in its tree. */
		root_node = em_root_node(existing);
		bpf_probe_read_kernel(&tree_root_node, sizeof(tree_root_node), (void *)cur->tree_root);
	}
	e = reserve(BDT_EV_EM_EXIST);
	if (!e)
		return 0;
	fill_task(e);
	if (cur && root_node && root_node == tree_root_node) {
		put_ident(e, &cur->id);
	} else {
		read_fsid(e->fsid, fs_info);
		e->sb_dev = sb_dev;
	}
	e->u.emx.e_start = BPF_CORE_READ(existing, start);
	e->u.emx.e_len = BPF_CORE_READ(existing, len);
	e->u.emx.map_start = BPF_CORE_READ(map, start);
	e->u.emx.map_len = BPF_CORE_READ(map, len);
	e->u.emx.start = ctx[3];
	e->u.emx.len = ctx[4];
	bdt_submit(e);
	return 0;
}

/* ---- ordered extents ----------------------------------------------------------- */
static __always_inline bool oe_ioerr(u64 kflags)
{
	return oe_ioerr_bit < 64 && ((kflags >> (oe_ioerr_bit & 63)) & 1);
}

static __always_inline int on_ordered(u64 *ctx, u16 type)
{
	const struct btrfs_inode *bi = (void *)ctx[0];
	const struct btrfs_ordered_extent *oe = (void *)ctx[1];
	struct bdt_raw_event *e;
	struct ident id = {};

	/* a clean completion changes no detector's state */
	if (type == BDT_EV_OE_MARK_FINISHED && !all_events && oe_ioerr_bit < 64 &&
	    !oe_ioerr(BPF_CORE_READ(oe, flags)))
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	e = reserve(type);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	if (bpf_core_field_exists(oe->num_bytes)) {
		e->u.oe.file_offset = BPF_CORE_READ(oe, file_offset);
		e->u.oe.len = BPF_CORE_READ(oe, num_bytes);
	} else {
		e->u.oe.file_offset = BPF_CORE_READ((struct btrfs_ordered_extent___old *)oe, start);
		e->u.oe.len = BPF_CORE_READ((struct btrfs_ordered_extent___old *)oe, len);
	}
	if (bpf_core_field_exists(oe->disk_bytenr))
		e->u.oe.disk_bytenr = BPF_CORE_READ(oe, disk_bytenr);
	e->u.oe.bytes_left = BPF_CORE_READ(oe, bytes_left);
	e->u.oe.kflags = BPF_CORE_READ(oe, flags);
	bdt_submit(e);
	return 0;
}

static __always_inline int on_finish_ordered(u64 *ctx)
{
	const struct btrfs_inode *bi = (void *)ctx[0];
	struct bdt_raw_event *e;
	struct ident id = {};

	if ((u8)ctx[3] && !all_events) /* uptodate: changes no detector's state */
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	e = reserve(BDT_EV_OE_FINISH);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.oe.file_offset = ctx[1];
	e->u.oe.len = ctx[2];
	if ((u8)ctx[3])
		e->flags |= BDT_F_UPTODATE;
	bdt_submit(e);
	return 0;
}

/* ---- relocation ------------------------------------------------------------------ */
static __always_inline int on_reclaim_bg(u64 *ctx)
{
	const struct btrfs_block_group *bg = (void *)ctx[0];
	struct btrfs_fs_info *fs_info = BPF_CORE_READ(bg, fs_info);
	u64 sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	struct bdt_raw_event *e;

	if (!fs_pass(sb_dev))
		return 0;
	e = reserve(BDT_EV_RELOC_BEGIN);
	if (!e)
		return 0;
	fill_task(e);
	read_fsid(e->fsid, fs_info);
	e->sb_dev = sb_dev;
	e->u.rel.block_group = BPF_CORE_READ(bg, start);
	e->u.rel.len = BPF_CORE_READ(bg, length);
	e->u.rel.bg_flags = BPF_CORE_READ(bg, flags);
	bdt_submit(e);
	return 0;
}

/* ---- ioctls ------------------------------------------------------------------------ */
static __always_inline u32 ioctl_kind(u32 cmd)
{
	switch (cmd) {
	case BTRFS_IOC_SEND: return BDT_IOC_SEND;
	case BTRFS_IOC_BALANCE: return BDT_IOC_BALANCE;
	case BTRFS_IOC_BALANCE_V2: return BDT_IOC_BALANCE_V2;
	case BTRFS_IOC_RM_DEV: return BDT_IOC_RM_DEV;
	case BTRFS_IOC_RM_DEV_V2: return BDT_IOC_RM_DEV_V2;
	case BTRFS_IOC_RESIZE: return BDT_IOC_RESIZE;
	}
	return BDT_IOC_OTHER;
}

static __always_inline int ioctl_enter(u64 fd, u64 raw_cmd)
{
	u32 kind = ioctl_kind((u32)raw_cmd);
	struct task_struct *task;
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = 0;
	struct inode *inode;
	struct super_block *sb;
	struct ioctl_req req = {};
	struct bdt_raw_event *e;
	u32 tid;

	if (kind == BDT_IOC_OTHER)
		return 0;
	if (!task_pass())
		return 0;
	task = (void *)bpf_get_current_task();
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	inode = BPF_CORE_READ(f, f_inode);
	sb = BPF_CORE_READ(inode, i_sb);
	if (!is_btrfs_sb(sb) || !fs_pass(BPF_CORE_READ(sb, s_dev)))
		return 0;
	btrfs_ident(&req.id, btrfs_i(inode));
	req.fd = fd;
	req.cmd = kind;
	req.raw_cmd = raw_cmd;
	/* send/balance with their function hooks attached: those report the call
	 * (also balance resumed by a kernel thread); this only keeps fd and cmd */
	req.owner = (ioc_fn_mask & (1u << kind)) ? IOC_OWNER_NONE : IOC_OWNER_SYSCALL;
	tid = (u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&inflight_ioctl, &tid, &req, BPF_ANY);
	if (req.owner != IOC_OWNER_SYSCALL)
		return 0;

	e = reserve(BDT_EV_IOCTL_BEGIN);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &req.id);
	e->u.ioc.fd = req.fd;
	e->u.ioc.cmd = req.cmd;
	e->u.ioc.raw_cmd = raw_cmd;
	bdt_submit(e);
	return 0;
}

static __always_inline int ioctl_exit(s64 ret)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct ioctl_req *req = bpf_map_lookup_elem(&inflight_ioctl, &tid);
	struct bdt_raw_event *e;

	if (!req)
		return 0;
	e = req->owner == IOC_OWNER_SYSCALL ? reserve(BDT_EV_IOCTL_END) : 0;
	if (e) {
		fill_task(e);
		put_ident(e, &req->id);
		e->u.ioc.fd = req->fd;
		e->u.ioc.cmd = req->cmd;
		e->u.ioc.raw_cmd = req->raw_cmd;
		e->u.ioc.ret = ret;
		bdt_submit(e);
	}
	bpf_map_delete_elem(&inflight_ioctl, &tid);
	return 0;
}

/* classic syscall tracepoints: the layout of syscalls/sys_{enter,exit}_ioctl/format */
struct sys_enter_ioctl_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	u64 fd;
	u64 cmd;
	u64 arg;
};

struct sys_exit_ioctl_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_ioctl")
int tp_ioctl_enter(struct sys_enter_ioctl_ctx *ctx)
{
	return ioctl_enter(ctx->fd, ctx->cmd);
}

SEC("tracepoint/syscalls/sys_exit_ioctl")
int tp_ioctl_exit(struct sys_exit_ioctl_ctx *ctx)
{
	return ioctl_exit(ctx->ret);
}

/* fallback: raw sys_enter/sys_exit (every syscall; filter by number) */
SEC("tp_btf/sys_enter")
int tb_sys_enter(u64 *ctx)
{
	struct pt_regs *regs = (void *)ctx[0];

	if ((long)ctx[1] != nr_ioctl)
		return 0;
	return ioctl_enter(BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si));
}

SEC("tp_btf/sys_exit")
int tb_sys_exit(u64 *ctx)
{
	struct pt_regs *regs = (void *)ctx[0];

	if (BPF_CORE_READ(regs, orig_ax) != nr_ioctl)
		return 0;
	return ioctl_exit((s64)ctx[1]);
}

/* ---- the programs: a tp_btf and a raw_tp twin per tracepoint ------------------- */
#define BDT_TWIN(tp, fn, call)                                  \
	SEC("tp_btf/" #tp) int tb_##fn(u64 *ctx) { return call; } \
	SEC("raw_tp/" #tp) int rt_##fn(u64 *ctx) { return call; }

BDT_TWIN(iomap_dio_rw_begin, dio_begin, on_dio_begin(ctx, BDT_SRC_TRACEPOINT))
BDT_TWIN(iomap_dio_rw_queued, dio_queued, on_dio_queued(ctx))
BDT_TWIN(iomap_dio_complete, dio_complete, on_dio_complete(ctx, BDT_SRC_TRACEPOINT, ctx))
BDT_TWIN(btrfs_get_extent, get_extent, on_get_extent(ctx))
BDT_TWIN(btrfs_handle_em_exist, em_exist, on_em_exist(ctx))
BDT_TWIN(btrfs_ordered_extent_add, oe_add, on_ordered(ctx, BDT_EV_OE_ADD))
BDT_TWIN(btrfs_ordered_extent_split, oe_split, on_ordered(ctx, BDT_EV_OE_SPLIT))
BDT_TWIN(btrfs_ordered_extent_start, oe_start, on_ordered(ctx, BDT_EV_OE_START))
BDT_TWIN(btrfs_ordered_extent_mark_finished, oe_mark_fin, on_ordered(ctx, BDT_EV_OE_MARK_FINISHED))
BDT_TWIN(btrfs_ordered_extent_remove, oe_remove, on_ordered(ctx, BDT_EV_OE_REMOVE))
BDT_TWIN(btrfs_finish_ordered_extent, oe_finish, on_finish_ordered(ctx))
BDT_TWIN(btrfs_reclaim_block_group, reclaim_bg, on_reclaim_bg(ctx))

/* =================================================================================
 * Function hooks: fentry/fexit and kprobe/kretprobe.
 *
 * Every function hook exists as up to four programs sharing one handler:
 *   fe_X (fentry) / kp_X (kprobe)      on entry: handler(ctx, args, src)
 *   fx_X (fexit)  / kr_X (kretprobe)   on return: handler(ctx, args, ret, src)
 * The attach target is set by the loader (src/loader/hooks.cpp) at open time
 * (fentry: bpf_program__set_attach_target, module BTF included) or at attach
 * time (kprobe: the exact /proc/kallsyms name, ThinLTO suffixes included), so
 * the SEC() names carry no function. Arguments reach the handlers as a u64
 * array in both cases: bpf_get_func_arg() for fentry/fexit (so a handler may
 * ask for more arguments than a kernel's prototype has: they read as 0), the
 * x86_64 argument registers for kprobes. kretprobes get their arguments from a
 * per-thread stash the kprobe filled (fexit has them in its context).
 * Argument layouts that changed between kernels are told by the loader from
 * the kernel's BTF prototypes (the *_layout rodata below).
 * ================================================================================= */
#define BDT_NARGS 5

/* btrfs_get_extent(inode, folio, start, len) (6.x) vs (inode, page, pg_offset, start, len) (6.1) */
const volatile bool ge_folio_args = false;
/* 0: add_extent_mapping(tree, em, modified)   1: add_extent_mapping(btrfs_inode, em, modified)
 * 2: btrfs_add_extent_mapping(fs_info, tree, em_in, start, len)
 * 3: btrfs_add_extent_mapping(btrfs_inode, em_in, start, len) */
const volatile __u32 em_add_layout = 0;
/* btrfs_ordered_extent::inode is a struct btrfs_inode * (6.3+) */
const volatile bool oe_inode_is_btrfs = false;
/* kernel bit number (64: unknown); BTRFS_ORDERED_IOERR is with the configuration above */
const volatile __u32 eb_stale_bit = 64;
/* extent buffers: every free/find (true) or only those of STALE buffers (default) */
const volatile bool eb_all = false;
/* 0: int btrfs_check_data_csum(inode, bbio, bio_offset, page, pgoff), nonzero = failure
 * 1: bool btrfs_data_csum_ok(bbio, dev, bio_offset, paddr), false = failure */
const volatile __u32 csum_layout = 0;
/* first argument of btrfs_ioctl_send: 0 struct inode, 1 struct btrfs_inode, 2 struct btrfs_root */
const volatile __u32 send_layout = 0;

enum fn_hook_id {
	FN_DIO_W = 1,
	FN_DIO_R,
	FN_DIO_CMPL,
	FN_GET_EXT,
	FN_EM_ADD,
	FN_EB_FREE,
	FN_EB_FIND,
	FN_RELOC,
	FN_CSUM,
	FN_SEND,
	FN_BALANCE,
};

struct fn_key {
	u32 tid;
	u32 hook;
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

/* iomap_dio_complete() frees the dio: its kiocb and error are kept from entry. */
struct dio_cmpl {
	u64 iocb;
	s64 error;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct dio_cmpl);
} dio_cmpl_tid SEC(".maps");

/* The extent buffer this thread is freeing (enter emitted), for the exit half. */
struct eb_freeing {
	u8 fsid[BDT_FSID_LEN];
	u64 sb_dev;
	u64 start;
	u64 ptr;
	u64 bflags;
	s32 refs;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct eb_freeing);
} eb_free_tid SEC(".maps");

static __always_inline u32 cur_tid(void)
{
	return (u32)bpf_get_current_pid_tgid();
}

static __always_inline bool is_err_value(s64 v)
{
	return v < 0 && v >= -4095;
}

/* Does this thread have a traced DIO request in flight (submission side)? */
static __always_inline bool in_traced_dio(void)
{
	u32 tid = cur_tid();

	return bpf_map_lookup_elem(&cur_dio, &tid) != 0;
}

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

/* ---- DIO begin/end where iomap has no tracepoints (6.1) ------------------------- */
/* btrfs_dio_write/btrfs_dio_read(iocb, iter, done_before): btrfs' calls into
 * __iomap_dio_rw, which btrfs always passes IOMAP_DIO_PARTIAL. */
static __always_inline int fn_dio_enter(void *ctx, u64 *a, u8 src)
{
	u64 t[4] = { a[0], a[1], BDT_IOMAP_DIO_PARTIAL, a[2] };

	return on_dio_begin(t, src);
}

/* Submission done (sync: iomap_dio_complete follows in this thread; async: queued). */
static __always_inline int fn_dio_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	u32 tid = cur_tid();

	bpf_map_delete_elem(&cur_dio, &tid);
	return 0;
}

static __always_inline int fn_dio_cmpl_enter(void *ctx, u64 *a, u8 src)
{
	struct iomap_dio *dio = (void *)a[0];
	struct dio_cmpl c = {};
	u32 tid = cur_tid();

	c.iocb = (u64)BPF_CORE_READ(dio, iocb);
	c.error = BPF_CORE_READ(dio, error);
	bpf_map_update_elem(&dio_cmpl_tid, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline int fn_dio_cmpl_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	u32 tid = cur_tid();
	struct dio_cmpl *c = bpf_map_lookup_elem(&dio_cmpl_tid, &tid);
	u64 t[3];

	if (!c)
		return 0;
	t[0] = c->iocb;
	t[1] = (u64)c->error;
	t[2] = (u64)ret;
	bpf_map_delete_elem(&dio_cmpl_tid, &tid);
	return on_dio_complete(t, src, ctx);
}

/* ---- btrfs_get_extent ---------------------------------------------------------- */
static __always_inline int fn_get_extent(void *ctx, u64 *a, s64 ret, u8 src, bool exit)
{
	const struct btrfs_inode *bi = (void *)a[0];
	u64 start = ge_folio_args ? a[2] : a[3];
	u64 len = ge_folio_args ? a[3] : a[4];
	struct bdt_raw_event *e;
	struct ident id = {};

	btrfs_ident(&id, bi);
	if (!fs_pass(id.sb_dev) || !task_pass())
		return 0;
	touch_inode(&id);
	e = reserve_src(BDT_EV_GET_EXTENT, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->phase = exit ? BDT_PHASE_EXIT : BDT_PHASE_ENTER;
	e->u.ext.start = start;
	e->u.ext.len = len;
	if (exit) {
		if (is_err_value(ret)) {
			e->u.ext.ret = ret;
			e->flags |= BDT_F_ERR_PTR;
			if ((ret == -5 || ret == -17) && in_traced_dio())
				e->stack_id = stack_of(ctx);
		} else {
			const struct extent_map *em = (void *)ret;

			e->u.ext.em_start = BPF_CORE_READ(em, start);
			e->u.ext.em_len = BPF_CORE_READ(em, len);
			e->u.ext.block_start = em_block_start(em);
			e->u.ext.em_flags = em_flags(em);
		}
	}
	bdt_submit(e);
	return 0;
}

static __always_inline int fn_get_extent_enter(void *ctx, u64 *a, u8 src)
{
	return fn_get_extent(ctx, a, 0, src, false);
}

static __always_inline int fn_get_extent_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_get_extent(ctx, a, ret, src, true);
}

/* ---- add_extent_mapping / btrfs_add_extent_mapping (return) --------------------- */
static __always_inline int fn_em_add_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	const struct btrfs_inode *bi;
	const struct extent_map *em = 0;
	struct bdt_raw_event *e;
	struct ident id = {};
	struct super_block *sb;

	if (em_add_layout == 0 || em_add_layout == 2) {
		u64 tree = em_add_layout == 0 ? a[0] : a[1];

		bi = (void *)(tree - bpf_core_field_offset(struct btrfs_inode, extent_tree));
	} else {
		bi = (void *)a[0];
	}
	if (em_add_layout == 0 || em_add_layout == 1)
		em = (void *)a[1];
	else
		bpf_probe_read_kernel(&em, sizeof(em), (void *)(em_add_layout == 2 ? a[2] : a[1]));
	/* 6.1's add_extent_mapping also serves the chunk map tree: only inode trees count */
	sb = BPF_CORE_READ(bi, vfs_inode.i_sb);
	if (!is_btrfs_sb(sb) || BPF_CORE_READ(bi, root, fs_info, sb) != sb || !em)
		return 0;
	btrfs_ident(&id, bi);
	if (!fs_pass(id.sb_dev) || !task_pass())
		return 0;
	e = reserve_src(BDT_EV_EM_ADD, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.ext.start = BPF_CORE_READ(em, start);
	e->u.ext.len = BPF_CORE_READ(em, len);
	e->u.ext.em_start = e->u.ext.start;
	e->u.ext.em_len = e->u.ext.len;
	e->u.ext.block_start = em_block_start(em);
	e->u.ext.em_flags = em_flags(em);
	e->u.ext.ret = (s32)ret;
	if (((s32)ret == -17 || (s32)ret == -5) && in_traced_dio())
		e->stack_id = stack_of(ctx);
	bdt_submit(e);
	return 0;
}

/* ---- btrfs_finish_ordered_io (where btrfs_finish_ordered_extent is missing) ------ */
static __always_inline int fn_oe_finish_enter(void *ctx, u64 *a, u8 src)
{
	const struct btrfs_ordered_extent *oe = (void *)a[0];
	void *ip = BPF_CORE_READ(oe, inode);
	const struct btrfs_inode *bi = oe_inode_is_btrfs ? ip : btrfs_i(ip);
	struct bdt_raw_event *e;
	struct ident id = {};
	u64 kflags = BPF_CORE_READ(oe, flags);

	/* finished cleanly: changes no detector's state (see all_events) */
	if (!all_events && oe_ioerr_bit < 64 && !oe_ioerr(kflags))
		return 0;
	btrfs_ident(&id, bi);
	if (!inode_pass(&id))
		return 0;
	e = reserve_src(BDT_EV_OE_FINISH, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.oe.file_offset = BPF_CORE_READ(oe, file_offset);
	e->u.oe.len = BPF_CORE_READ(oe, num_bytes);
	e->u.oe.disk_bytenr = BPF_CORE_READ(oe, disk_bytenr);
	e->u.oe.bytes_left = BPF_CORE_READ(oe, bytes_left);
	e->u.oe.kflags = kflags;
	if (!oe_ioerr(kflags))
		e->flags |= BDT_F_UPTODATE;
	bdt_submit(e);
	return 0;
}

/* ---- extent buffers ----------------------------------------------------------------- */
static __always_inline bool eb_wanted(u64 bflags)
{
	if (eb_all)
		return true;
	return eb_stale_bit < 64 && ((bflags >> (eb_stale_bit & 63)) & 1);
}

static __always_inline int eb_emit(struct extent_buffer *eb, u16 type, u8 phase, u8 src,
				   bool filter_stale)
{
	struct btrfs_fs_info *fs_info;
	struct bdt_raw_event *e;
	u64 bflags, sb_dev;

	if (!eb)
		return 0;
	bflags = BPF_CORE_READ(eb, bflags);
	if (filter_stale && !eb_wanted(bflags))
		return 0;
	fs_info = BPF_CORE_READ(eb, fs_info);
	sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	if (!fs_pass(sb_dev) || !task_pass())
		return 0;
	e = reserve_src(type, src);
	if (!e)
		return 0;
	fill_task(e);
	read_fsid(e->fsid, fs_info);
	e->sb_dev = sb_dev;
	e->phase = phase;
	e->u.eb.eb_start = BPF_CORE_READ(eb, start);
	e->u.eb.kbflags = bflags;
	e->u.eb.eb_ptr = (u64)eb;
	e->u.eb.refs = BPF_CORE_READ(eb, refs.counter);
	if (type == BDT_EV_EB_FREE && phase == BDT_PHASE_ENTER) {
		struct eb_freeing f = {};
		u32 tid = cur_tid();

		__builtin_memcpy(f.fsid, e->fsid, BDT_FSID_LEN);
		f.sb_dev = sb_dev;
		f.start = e->u.eb.eb_start;
		f.ptr = (u64)eb;
		f.bflags = bflags;
		f.refs = e->u.eb.refs;
		bpf_map_update_elem(&eb_free_tid, &tid, &f, BPF_ANY);
	}
	bdt_submit(e);
	return 0;
}

static __always_inline int fn_eb_free_enter(void *ctx, u64 *a, u8 src)
{
	return eb_emit((void *)a[0], BDT_EV_EB_FREE, BDT_PHASE_ENTER, src, true);
}

/* The buffer may be gone: report what the enter half saw (only if it was reported). */
static __always_inline int fn_eb_free_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	u32 tid = cur_tid();
	struct eb_freeing *f = bpf_map_lookup_elem(&eb_free_tid, &tid);
	struct bdt_raw_event *e;

	if (!f || f->ptr != a[0])
		return 0;
	e = reserve_src(BDT_EV_EB_FREE, src);
	if (e) {
		fill_task(e);
		__builtin_memcpy(e->fsid, f->fsid, BDT_FSID_LEN);
		e->sb_dev = f->sb_dev;
		e->phase = BDT_PHASE_EXIT;
		e->u.eb.eb_start = f->start;
		e->u.eb.eb_ptr = f->ptr;
		e->u.eb.kbflags = f->bflags;
		e->u.eb.refs = f->refs;
		bdt_submit(e);
	}
	bpf_map_delete_elem(&eb_free_tid, &tid);
	return 0;
}

static __always_inline int fn_eb_find_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return eb_emit((void *)ret, BDT_EV_EB_FIND, BDT_PHASE_EXIT, src, true);
}

static __always_inline int fn_eb_release_enter(void *ctx, u64 *a, u8 src)
{
	return eb_emit((void *)a[0], BDT_EV_EB_RELEASE, BDT_PHASE_NONE, src, false);
}

/* ---- relocation: btrfs_relocate_block_group(fs_info, group_start[, verbose]) ------ */
static __always_inline int fn_reloc(void *ctx, u64 *a, s64 ret, u8 src, bool exit)
{
	struct btrfs_fs_info *fs_info = (void *)a[0];
	u64 sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
	struct bdt_raw_event *e;

	if (!fs_pass(sb_dev))
		return 0;
	e = reserve_src(exit ? BDT_EV_RELOC_END : BDT_EV_RELOC_BEGIN, src);
	if (!e)
		return 0;
	fill_task(e);
	read_fsid(e->fsid, fs_info);
	e->sb_dev = sb_dev;
	e->u.rel.block_group = a[1];
	if (exit)
		e->u.rel.ret = (s32)ret;
	bdt_submit(e);
	return 0;
}

static __always_inline int fn_reloc_enter(void *ctx, u64 *a, u8 src)
{
	return fn_reloc(ctx, a, 0, src, false);
}

static __always_inline int fn_reloc_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_reloc(ctx, a, ret, src, true);
}

/* ---- send and balance at btrfs' entry points ----------------------------------------
 * btrfs_ioctl_send(X, args): X is struct inode (6.1), struct btrfs_inode or struct
 * btrfs_root (newer; send_layout from the BTF prototype); btrfs_balance(fs_info, bctl,
 * bargs) runs for the balance ioctls and for a balance resumed after mount (kernel
 * thread, no ioctl: fd -1). Inside an ioctl the syscall hook's record gives fd, cmd and
 * the file's identity; the call is reported by whichever source saw it first. */
static __always_inline struct btrfs_fs_info *send_fs_info(u64 arg0)
{
	switch (send_layout) {
	case 1: return BPF_CORE_READ((struct btrfs_inode *)arg0, root, fs_info);
	case 2: return BPF_CORE_READ((struct btrfs_root *)arg0, fs_info);
	}
	return BPF_CORE_READ((struct inode *)arg0, i_sb, s_fs_info);
}

static __always_inline int fn_ioc(void *ctx, u64 *a, s64 ret, u8 src, bool exit, u32 kind)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct ioctl_req *req = bpf_map_lookup_elem(&inflight_ioctl, &tid);
	struct ioctl_req fresh = {};
	struct btrfs_fs_info *fs_info;
	struct bdt_raw_event *e;

	if (req && req->owner == IOC_OWNER_SYSCALL)
		return 0;
	if (!exit) {
		if (!req) {
			if (!task_pass())
				return 0;
			fs_info = kind == BDT_IOC_SEND ? send_fs_info(a[0]) : (void *)a[0];
			fresh.id.sb_dev = BPF_CORE_READ(fs_info, sb, s_dev);
			if (!fs_pass(fresh.id.sb_dev))
				return 0;
			read_fsid(fresh.id.fsid, fs_info);
			fresh.fd = (u32)-1;
			fresh.cmd = kind;
			fresh.owner = IOC_OWNER_FN;
			bpf_map_update_elem(&inflight_ioctl, &tid, &fresh, BPF_ANY);
			req = bpf_map_lookup_elem(&inflight_ioctl, &tid);
			if (!req)
				return 0;
		} else if (req->owner == IOC_OWNER_NONE) {
			req->owner = IOC_OWNER_FN;
		} else {
			return 0;
		}
	} else if (!req || req->owner != IOC_OWNER_FN) {
		return 0;
	}
	e = reserve_src(exit ? BDT_EV_IOCTL_END : BDT_EV_IOCTL_BEGIN, src);
	if (e) {
		fill_task(e);
		put_ident(e, &req->id);
		e->u.ioc.fd = req->fd;
		e->u.ioc.cmd = req->cmd;
		e->u.ioc.raw_cmd = req->raw_cmd;
		e->u.ioc.ret = exit ? (s64)(s32)ret : 0;
		bdt_submit(e);
	}
	if (exit) {
		if (req->fd == (u32)-1)
			bpf_map_delete_elem(&inflight_ioctl, &tid);
		else
			req->owner = IOC_OWNER_FN_DONE;
	}
	return 0;
}

static __always_inline int fn_send_enter(void *ctx, u64 *a, u8 src)
{
	return fn_ioc(ctx, a, 0, src, false, BDT_IOC_SEND);
}

static __always_inline int fn_send_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_ioc(ctx, a, ret, src, true, BDT_IOC_SEND);
}

static __always_inline int fn_balance_enter(void *ctx, u64 *a, u8 src)
{
	return fn_ioc(ctx, a, 0, src, false, BDT_IOC_BALANCE);
}

static __always_inline int fn_balance_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	return fn_ioc(ctx, a, ret, src, true, BDT_IOC_BALANCE);
}

/* ---- data checksum failures ------------------------------------------------------------ */
static __always_inline int fn_csum_exit(void *ctx, u64 *a, s64 ret, u8 src)
{
	const struct btrfs_inode *bi;
	struct btrfs_bio *bbio;
	struct bdt_raw_event *e;
	struct ident id = {};
	u32 bio_offset;

	if (csum_layout == 0) {
		if ((s32)ret == 0)
			return 0;
		bi = btrfs_i((void *)a[0]);
		bbio = (void *)a[1];
		bio_offset = (u32)a[2];
	} else {
		if ((u8)ret)
			return 0;
		bbio = (void *)a[0];
		bio_offset = (u32)a[2];
		if (!bpf_core_field_exists(bbio->inode))
			return 0;
		bi = BPF_CORE_READ(bbio, inode);
	}
	btrfs_ident(&id, bi);
	/* runs in end-io workers: filtered by inode, like ordered extents */
	if (!inode_pass(&id))
		return 0;
	e = reserve_src(BDT_EV_CSUM_ERROR, src);
	if (!e)
		return 0;
	fill_task(e);
	put_ident(e, &id);
	e->u.csum.offset = BPF_CORE_READ(bbio, file_offset) + bio_offset;
	e->u.csum.len = BPF_CORE_READ(bi, root, fs_info, sectorsize);
	e->u.csum.mirror = BPF_CORE_READ(bbio, mirror_num);
	e->stack_id = stack_of(ctx);
	bdt_submit(e);
	return 0;
}

/* ---- the programs ------------------------------------------------------------------ */
/* on entry: the fentry program */
#define BDT_FN_FENTRY(name, E)                                                  \
	SEC("fentry") int fe_##name(u64 *ctx)                                   \
	{                                                                       \
		u64 a[BDT_NARGS];                                               \
		fe_args(ctx, a);                                                \
		return E(ctx, a, BDT_SRC_FENTRY);                               \
	}

/* on entry: the kprobe program; hook != 0 keeps the arguments for the kretprobe */
#define BDT_FN_KPROBE(name, hook, E)                                            \
	SEC("kprobe") int kp_##name(struct pt_regs *ctx)                        \
	{                                                                       \
		u64 a[BDT_NARGS];                                               \
		kp_args(ctx, a);                                                \
		if (hook)                                                       \
			stash_args(hook, a);                                    \
		return E(ctx, a, BDT_SRC_KPROBE);                               \
	}

#define BDT_FN_RET(name, hook, X)                                               \
	SEC("fexit") int fx_##name(u64 *ctx)                                    \
	{                                                                       \
		u64 a[BDT_NARGS], ret = 0;                                      \
		fe_args(ctx, a);                                                \
		bpf_get_func_ret(ctx, &ret);                                    \
		return X(ctx, a, (s64)ret, BDT_SRC_FENTRY);                     \
	}                                                                       \
	SEC("kretprobe") int kr_##name(struct pt_regs *ctx)                     \
	{                                                                       \
		u64 a[BDT_NARGS];                                               \
		if (!unstash_args(hook, a))                                     \
			return 0;                                               \
		return X(ctx, a, (s64)ctx->ax, BDT_SRC_KPROBE);                 \
	}

static __always_inline int fn_no_enter(void *ctx, u64 *a, u8 src)
{
	return 0;
}

/* enter half only */
#define BDT_FN_ENTER(name, E) BDT_FN_FENTRY(name, E) BDT_FN_KPROBE(name, 0, E)
/* exit half only: the kprobe just keeps the arguments for the kretprobe */
#define BDT_FN_EXIT(name, hook, X) BDT_FN_KPROBE(name, hook, fn_no_enter) BDT_FN_RET(name, hook, X)
/* enter and exit halves */
#define BDT_FN_BOTH(name, hook, E, X)                                           \
	BDT_FN_FENTRY(name, E) BDT_FN_KPROBE(name, hook, E) BDT_FN_RET(name, hook, X)

BDT_FN_BOTH(dio_w, FN_DIO_W, fn_dio_enter, fn_dio_exit)
BDT_FN_BOTH(dio_r, FN_DIO_R, fn_dio_enter, fn_dio_exit)
BDT_FN_BOTH(dio_cmpl, FN_DIO_CMPL, fn_dio_cmpl_enter, fn_dio_cmpl_exit)
BDT_FN_BOTH(get_ext, FN_GET_EXT, fn_get_extent_enter, fn_get_extent_exit)
BDT_FN_EXIT(em_add, FN_EM_ADD, fn_em_add_exit)
BDT_FN_ENTER(oe_fin, fn_oe_finish_enter)
BDT_FN_BOTH(eb_free, FN_EB_FREE, fn_eb_free_enter, fn_eb_free_exit)
BDT_FN_EXIT(eb_find, FN_EB_FIND, fn_eb_find_exit)
BDT_FN_ENTER(eb_rel, fn_eb_release_enter)
BDT_FN_BOTH(reloc, FN_RELOC, fn_reloc_enter, fn_reloc_exit)
BDT_FN_EXIT(csum, FN_CSUM, fn_csum_exit)
BDT_FN_BOTH(send, FN_SEND, fn_send_enter, fn_send_exit)
BDT_FN_BOTH(balance, FN_BALANCE, fn_balance_enter, fn_balance_exit)
