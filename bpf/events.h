/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace: the raw event records the BPF programs emit.
 *
 * Plain C, shared by the BPF objects (the bpf/ directory) and the C++ decoder
 * (src/live/decode.h). Every record is a fixed-size struct bdt_raw_event so
 * the ring buffer, the flight recorder and the binary trace file all use one
 * layout. Change the layout => bump BDT_RAW_ABI.
 *
 * Flag words (ordered-extent flags, extent-buffer bflags) are emitted with
 * the running kernel's bit numbers; the decoder translates them to names
 * using the kernel's BTF, so recorded traces mean the same on every kernel.
 */
#ifndef BDT_EVENTS_H
#define BDT_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
typedef __u8 bdt_u8;
typedef __u16 bdt_u16;
typedef __u32 bdt_u32;
typedef __u64 bdt_u64;
typedef __s32 bdt_s32;
typedef __s64 bdt_s64;
#else
typedef u8 bdt_u8;
typedef u16 bdt_u16;
typedef u32 bdt_u32;
typedef u64 bdt_u64;
typedef s32 bdt_s32;
typedef s64 bdt_s64;
#endif

#define BDT_RAW_ABI 3 /* 2: stack_id; 3: self-describing recorder slots (struct bdt_rec_slot) */
#define BDT_COMM_LEN 16
#define BDT_FSID_LEN 16

enum bdt_event_type {
	BDT_EV_NONE = 0,
	BDT_EV_DIO_BEGIN = 1,
	BDT_EV_DIO_END = 2,
	BDT_EV_GET_EXTENT = 3,
	BDT_EV_EM_ADD = 4,
	BDT_EV_EM_EXIST = 5,
	BDT_EV_OE_ADD = 6,
	BDT_EV_OE_SPLIT = 7,
	BDT_EV_OE_START = 8,
	BDT_EV_OE_MARK_FINISHED = 9,
	BDT_EV_OE_FINISH = 10,
	BDT_EV_OE_REMOVE = 11,
	BDT_EV_EB_FREE = 12,
	BDT_EV_EB_FIND = 13,
	BDT_EV_EB_RELEASE = 14,
	BDT_EV_IOCTL_BEGIN = 15,
	BDT_EV_IOCTL_END = 16,
	BDT_EV_RELOC_BEGIN = 17,
	BDT_EV_RELOC_END = 18,
	BDT_EV_CSUM_ERROR = 19,
	BDT_EV_DIO_FALLBACK = 20,
	BDT_EV_MAX
};

/* Phase of an event that has an enter and an exit half. */
enum bdt_phase {
	BDT_PHASE_NONE = 0,
	BDT_PHASE_ENTER = 1,
	BDT_PHASE_EXIT = 2,
};

/* The btrfs ioctls the tracer follows (cmd as a name in the event model). */
enum bdt_ioctl_cmd {
	BDT_IOC_OTHER = 0,
	BDT_IOC_SEND = 1,
	BDT_IOC_BALANCE = 2,       /* BTRFS_IOC_BALANCE (v1) */
	BDT_IOC_BALANCE_V2 = 3,    /* BTRFS_IOC_BALANCE_V2 */
	BDT_IOC_RM_DEV = 4,        /* BTRFS_IOC_RM_DEV, relocates */
	BDT_IOC_RM_DEV_V2 = 5,
	BDT_IOC_RESIZE = 6,        /* shrinking relocates */
};

/*
 * Triggers of the lazy emission (docs/performance.md, bpf/triggers.bpf.h):
 * what makes the programs emit the records they hold for the DIO requests
 * on an inode. Each detector lists the ones it needs (Detector::triggers(),
 * include/bdt/detector.h); the union is the programs' trigger_mask.
 */
enum bdt_trigger {
	BDT_TRIG_ERRNO = 0,       /* a request or extent-map call failed (not -EAGAIN) */
	BDT_TRIG_EEXIST = 1,      /* ... with -EEXIST */
	BDT_TRIG_CONTINUED = 2,   /* a DIO write continued (done_before > 0) */
	BDT_TRIG_SHORT = 3,       /* a DIO write completed fewer bytes than asked */
	BDT_TRIG_EM_EXIST = 4,    /* btrfs_handle_em_exist */
	BDT_TRIG_BUF_SHARED = 5,  /* a DIO write to a checksummed file from a shared writable buffer */
	BDT_TRIG_BUF_FILE = 6,    /* a DIO write from a mapping of a file */
	BDT_TRIG_OE_BUFFERED = 7, /* a non-DIRECT ordered extent created in a user process */
	BDT_TRIG_OE_IOERR = 8,    /* an ordered extent failed (IOERR, not uptodate) */
	BDT_TRIG_CSUM = 9,        /* a data checksum failure */
	BDT_TRIG_STALL = 10,      /* a request in flight past the stall threshold, seen when a later one on its filesystem completes */
	BDT_TRIG_CSUM_DIRECT = 11, /* a data checksum failure on a file with remembered direct writes */
	BDT_TRIG_OE_STALL = 12,   /* a DIRECT ordered extent open past the stall threshold, seen when a later one on its filesystem is removed */
	BDT_TRIG_ACKED_IOERR = 13, /* a DIRECT ordered extent of a write that returned with bytes acknowledged failed (IOERR) */
	BDT_TRIG_COUNT
};

/* dio_fallback: how the fallen-back write was observed (bdt_fallback.via). */
enum bdt_fallback_via {
	BDT_FB_CALL = 0,      /* btrfs' write function (fentry/kprobe): every submitter */
	BDT_FB_SYSCALL = 1,   /* write/pwrite64/writev/pwritev/pwritev2 */
	BDT_FB_LIBAIO = 2,    /* io_submit */
	BDT_FB_IO_URING = 3,  /* io_uring submission and completion */
};

/* Where a record came from (which mechanism fed it). */
enum bdt_source {
	BDT_SRC_TRACEPOINT = 1,
	BDT_SRC_FENTRY = 2,
	BDT_SRC_KPROBE = 3,
	BDT_SRC_SYNTHETIC = 4,
};

/* bdt_raw_event.flags */
#define BDT_F_WRITE         (1u << 0)  /* dio: data flows from user memory to the file */
#define BDT_F_AIO           (1u << 1)  /* dio: asynchronous kiocb */
#define BDT_F_BUF_SHARED    (1u << 2)  /* dio_begin: user buffer VMA is VM_SHARED */
#define BDT_F_BUF_WRITABLE  (1u << 3)  /* dio_begin: user buffer VMA is VM_WRITE */
#define BDT_F_BUF_FOUND     (1u << 4)  /* dio_begin: a VMA was found for the buffer */
#define BDT_F_NODATASUM     (1u << 5)  /* inode has no data checksums */
#define BDT_F_UPTODATE      (1u << 6)  /* oe_finish: uptodate */
#define BDT_F_HAS_DEV       (1u << 7)  /* dev/ino are meaningful */
#define BDT_F_PARTIAL       (1u << 8)  /* dio_begin: IOMAP_DIO_PARTIAL */
#define BDT_F_ERR_PTR       (1u << 9)  /* get_extent exit: ret is an ERR_PTR value */
#define BDT_F_DIR_KNOWN     (1u << 10) /* dio_end: WRITE/AIO come from the request's begin */
#define BDT_F_UNALIGNED     (1u << 11) /* dio_fallback: pos or count not sector-aligned */
#define BDT_F_REQUESTED     (1u << 12) /* dio_fallback: count is the request's size (result not seen) */

struct bdt_dio {
	bdt_u64 pos;
	union {
		bdt_u64 count;       /* dio_begin */
		bdt_u64 later_done;  /* dio_end, the stall trigger fired: at least this
				      * many requests on the filesystem that began after
				      * the stalled one completed (0: not counted) */
	};
	union {
		bdt_u64 done_before; /* dio_begin */
		bdt_u64 stalled_ts;  /* dio_end, the stall trigger fired: the stalled
				      * request's begin (its dio_begin's ts_ns) */
	};
	bdt_s64 ret;           /* dio_end */
	bdt_s32 error;         /* dio_end */
	union {
		bdt_u32 dio_flags;   /* dio_begin */
		bdt_u32 stalled_tid; /* dio_end, the stall trigger fired: the stalled
				      * request's thread */
	};
	bdt_u64 buf_addr;      /* user address of the first iovec */
	union {
		bdt_u64 buf_file_ino; /* dio_begin; 0: anonymous memory */
		bdt_u64 stalled_ino;  /* dio_end, the stall trigger fired: its inode */
	};
	bdt_u64 buf_file_dev;  /* kernel dev_t of the buffer file's subvolume */
	bdt_u64 buf_file_off;
};

struct bdt_extent {
	bdt_u64 start;
	bdt_u64 len;
	bdt_u64 em_start;
	bdt_u64 em_len;
	bdt_u64 block_start;
	bdt_s64 ret;
	bdt_u32 em_flags;
	bdt_u32 pad;
};

struct bdt_em_exist {
	bdt_u64 e_start;
	bdt_u64 e_len;
	bdt_u64 map_start;
	bdt_u64 map_len;
	bdt_u64 start;
	bdt_u64 len;
};

struct bdt_ordered {
	bdt_u64 file_offset;
	bdt_u64 len;
	bdt_u64 disk_bytenr;
	bdt_u64 bytes_left;
	bdt_u64 kflags;        /* kernel bit numbers; decoder maps to names */
};

struct bdt_eb {
	bdt_u64 eb_start;
	bdt_u64 kbflags;       /* kernel bit numbers; decoder maps to names */
	bdt_u64 eb_ptr;        /* kernel address, identity only */
	bdt_s32 refs;
	bdt_u32 pad;
};

struct bdt_ioctl {
	bdt_s64 ret;
	bdt_u32 fd;
	bdt_u32 cmd;           /* enum bdt_ioctl_cmd */
	bdt_u64 raw_cmd;
};

struct bdt_reloc {
	bdt_u64 block_group;
	bdt_u64 len;
	bdt_s64 ret;
	bdt_u64 bg_flags;
};

struct bdt_fallback {
	bdt_u64 pos;
	bdt_u64 count;         /* bytes written, or requested with BDT_F_REQUESTED */
	bdt_s32 fd;            /* -1: not known */
	bdt_u32 via;           /* enum bdt_fallback_via */
};

struct bdt_csum {
	bdt_u64 offset;
	bdt_u64 len;
	bdt_u32 mirror;
	bdt_u32 pad;
};

struct bdt_raw_event {
	bdt_u64 ts_ns;         /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	bdt_u32 pid;           /* tgid */
	bdt_u32 tid;
	char comm[BDT_COMM_LEN];
	bdt_u16 type;          /* enum bdt_event_type */
	bdt_u8 phase;          /* enum bdt_phase */
	bdt_u8 source;         /* enum bdt_source */
	bdt_u32 flags;         /* BDT_F_* */
	bdt_u8 fsid[BDT_FSID_LEN];
	/* Error origin: kernel stack id + 1 in the `stacks` map (0: none), set when
	 * a hooked function returned -EEXIST/-EIO for a traced DIO request or a
	 * checksum check failed. (Added in ABI 2; 4 bytes of padding follow.) */
	bdt_u32 stack_id;
	bdt_u64 dev;           /* kernel dev_t (MKDEV) of the subvolume (st_dev) */
	bdt_u64 sb_dev;        /* kernel dev_t of the superblock */
	bdt_u64 ino;
	bdt_u64 root;          /* subvolume root objectid, 0 if unknown */
	union {
		struct bdt_dio dio;
		struct bdt_extent ext;
		struct bdt_em_exist emx;
		struct bdt_ordered oe;
		struct bdt_eb eb;
		struct bdt_ioctl ioc;
		struct bdt_reloc rel;
		struct bdt_csum csum;
		struct bdt_fallback fb;
	} u;
};

/*
 * Flight recorder (docs/flight-recorder.md): every record is also written into
 * a per-CPU circular array of slots in the `recorder` map (BPF_F_MMAPABLE
 * array of ncpus * slots_per_cpu slots; CPU c owns slots [c*N, (c+1)*N)).
 * A slot is valid when seq == seq_end != 0. The writer stores seq_end (the
 * new sequence number) first, then the record, then seq, so a reader that
 * copies seq first and seq_end last sees them differ for a slot that was
 * being (re)written meanwhile (a torn read) and drops it. Sequence numbers
 * count per CPU from 1: the newest slot of a CPU has the highest.
 *
 * Every slot describes itself, so a reader of raw memory (a kernel crash
 * dump: the map's pages are scattered in physical memory) needs neither the
 * map nor the kernel's page tables: a magic, the recorder's instance id
 * (bdt_rec_meta.instance, drawn at the tracer's start), the CPU and the
 * sequence number, and a check over all of them and the record
 * (bdt_rec_check), written before seq. A slot is BDT_REC_SLOT_SIZE bytes, a
 * divisor of the page size, and the values of an mmap-able array start on a
 * page: no slot straddles a page boundary.
 */
#define BDT_REC_SLOT_MAGIC 0x7a5d7b1cu
#define BDT_REC_SLOT_SIZE 256
struct bdt_rec_slot {
	bdt_u64 seq;           /* written last */
	bdt_u32 magic;         /* BDT_REC_SLOT_MAGIC */
	bdt_u32 cpu;
	bdt_u64 instance;      /* bdt_rec_meta.instance */
	bdt_u64 check;         /* bdt_rec_check(instance, cpu, seq, ev) */
	struct bdt_raw_event ev;
	bdt_u64 seq_end;       /* written first */
	bdt_u64 reserved[6];   /* zero; pads the slot to BDT_REC_SLOT_SIZE */
};

/* 64-bit words read through this type may alias the record's fields (the
 * check is computed right after they are stored, in the same function). */
typedef bdt_u64 __attribute__((__may_alias__)) bdt_u64_alias;
#define BDT_REC_EV_WORDS (sizeof(struct bdt_raw_event) / 8)

/* The check of a slot: any change confined to one 64-bit word changes it
 * (each step is a bijection of h), a torn or flipped slot fails it. */
static __inline __attribute__((__always_inline__)) bdt_u64 bdt_rec_mix(bdt_u64 h, bdt_u64 w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 31);
}

static __inline __attribute__((__always_inline__)) bdt_u64
bdt_rec_check(bdt_u64 instance, bdt_u32 cpu, bdt_u64 seq, const bdt_u64_alias *ev_words)
{
	bdt_u64 h = bdt_rec_mix(BDT_REC_SLOT_MAGIC, instance);
	unsigned int i;

	h = bdt_rec_mix(h, cpu);
	h = bdt_rec_mix(h, seq);
#ifdef __clang__
#pragma unroll
#endif
	for (i = 0; i < BDT_REC_EV_WORDS; i++)
		h = bdt_rec_mix(h, ev_words[i]);
	return h;
}

/* What a later `dump --pin-dir` or `dump --vmcore` needs, in the one-entry
 * `rec_meta` map, written by the tracer after attaching; found in a crash
 * dump by its magic and checked whole (check = bdt_rec_check over the meta
 * with check zero). Change it => bump BDT_REC_META_VERSION. */
#define BDT_REC_MAGIC 0x31434552544442ULL /* "BDTREC1" little-endian */
#define BDT_REC_META_VERSION 2 /* 2: instance, check; self-describing slots */
#define BDT_REC_HOOKS_LEN 3072

struct bdt_rec_meta {
	bdt_u64 magic;
	bdt_u32 meta_version;
	bdt_u32 raw_abi;              /* BDT_RAW_ABI of the programs */
	bdt_u32 slot_size;            /* sizeof(struct bdt_rec_slot) */
	bdt_u32 slots_per_cpu;
	bdt_u32 ncpus;                /* possible CPUs when the tracer started */
	bdt_u32 tracer_pid;
	bdt_u64 instance;             /* this recorder's id, in every slot (never 0) */
	bdt_u64 check;                /* over the whole meta, this field zero */
	bdt_u64 start_mono_ns;        /* CLOCK_MONOTONIC at start */
	bdt_u64 start_realtime_ns;    /* CLOCK_REALTIME at start */
	bdt_s64 mono_to_realtime_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC at start */
	char boot_id[40];             /* /proc/sys/kernel/random/boot_id */
	char release[72];             /* uname -r */
	char hooks[BDT_REC_HOOKS_LEN]; /* "name\tmechanism\t0|1\n" per hook */
};

/* --qemu per-file counts (not ring-buffer records): one value per (process,
 * subvolume dev, inode, direction) in the lat_hist hash map, updated at DIO
 * completion (latency from the begin time kept with the in-flight request),
 * and per (dev, inode) for ordered extents written through the page cache
 * (pid 0, write BDT_LAT_BUFFERED: requests = extents, bytes = their length).
 * Bucket 0 holds 0..1 ns, bucket i >= 1 holds [2^i, 2^(i+1)) ns; the last
 * bucket also holds everything above. */
#define BDT_LAT_BUCKETS 48
#define BDT_LAT_BUFFERED 2
struct bdt_lat_key {
	bdt_u32 pid;   /* tgid of the submitter (0 for BDT_LAT_BUFFERED) */
	bdt_u32 write; /* 1: write, 0: read, BDT_LAT_BUFFERED: buffered ordered extents */
	bdt_u64 dev;   /* kernel dev_t of the subvolume (st_dev) */
	bdt_u64 ino;
};
struct bdt_lat_val {
	bdt_u64 slots[BDT_LAT_BUCKETS];
	bdt_u64 max_ns; /* largest latency seen (racy max: may miss a concurrent larger one by one update) */
	bdt_u64 sum_ns;
	/* as struct bdt_dio_count: requests and bytes done, errors, -EAGAIN, short writes */
	bdt_u64 requests;
	bdt_u64 bytes;
	bdt_u64 errors;
	bdt_u64 again;
	bdt_u64 short_writes;
};

/* Traffic counts (not ring-buffer records): what the summary and the metrics
 * report, counted by the programs per CPU whether or not a record is made.
 * dio_counts: per filesystem slot (fs_slots: the first BDT_FS_SLOTS
 * filesystems seen, later ones share slot BDT_FS_SLOTS) and direction
 * (BDT_DIR_*), the requests completed, as docs/metrics.md defines them:
 * -EAGAIN attempts count only as `again`; bytes are the request's own part
 * (ret - done_before); a short write completed 0 <= bytes < count. */
#define BDT_FS_SLOTS 16
#define BDT_DIR_READ 0
#define BDT_DIR_WRITE 1
#define BDT_DIR_UNKNOWN 2 /* an end whose begin was not seen */
#define BDT_DIRS 3
struct bdt_fs_slot {
	bdt_u64 sb_dev;        /* kernel dev_t of the superblock; 0: free */
	bdt_u8 fsid[BDT_FSID_LEN];
};
struct bdt_dio_count {
	bdt_u64 requests;
	bdt_u64 bytes;
	bdt_u64 errors;
	bdt_u64 again;
	bdt_u64 short_writes;
	bdt_u64 lat_sum_ns;
	bdt_u64 lat[BDT_LAT_BUCKETS]; /* log2 buckets as struct bdt_lat_val */
};
/* event_counts[0]: events by type (what --events would print, whether or
 * not a record was made), and the DIO requests begun / ended / ended
 * without a begin the programs saw. */
#define BDT_EV_SLOTS 32
struct bdt_event_count {
	bdt_u64 events[BDT_EV_SLOTS]; /* by enum bdt_event_type */
	bdt_u64 dio_begins;
	bdt_u64 dio_ends;              /* completions of a begun request */
	bdt_u64 dio_unmatched;         /* completions without a begin */
	bdt_u64 oe_untracked;          /* DIRECT ordered extents (or parts split off one) the
					* table of those in flight could not keep, all their
					* slots taken (bpf/ordered.bpf.h): findings only,
					* acked_ioerr and oe_stall do not see them */
};

#endif /* BDT_EVENTS_H */
