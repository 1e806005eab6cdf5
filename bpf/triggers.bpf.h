/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace BPF: the triggers of the lazy emission, one line each.
 *
 * With lazy emission (the default: findings only, docs/performance.md) a
 * DIO request makes no record while nothing a detector acts on happens: its
 * begin, the sub-events in its thread (ordered extents it creates, extent
 * map lookups) and its end are held in its in-flight state (lazy.bpf.h) and
 * dropped when it ends cleanly. A trigger is a condition on what a hook just
 * saw (struct bdt_facts, filled at a hook point); when one fires the programs
 * emit what they hold for the inode (its requests in flight and those that
 * ended in the last recent_ns) and keep the inode "hot" for hot_ns: every
 * later record of it is emitted at once (lazy.bpf.h, flush_inode()).
 *
 * Which triggers exist: enum bdt_trigger (events.h) and Trigger
 * (include/bdt/detector.h). Which ones a detector needs: its triggers(),
 * next to its rules. trigger_mask (rodata) is their union; the rest are not
 * evaluated.
 *
 * To add a trigger:
 *   1. an enumerator in enum bdt_trigger and the same in Trigger;
 *   2. a line in BDT_TRIGGERS below: (name, hook point, condition over f);
 *      the same name may appear at several points;
 *   3. the detector that needs it lists it in its triggers().
 * If the condition needs a fact no hook point fills yet, add a field to
 * struct bdt_facts and fill it where the point is evaluated (bdt_fired()
 * callers: dio.bpf.h, extent_maps.bpf.h, ordered.bpf.h, checksums.bpf.h; the
 * stall trigger's fact comes from a scan of the requests in flight,
 * lazy.bpf.h stall_scan(); csum_direct's from the file's remembered direct
 * writes, direct_writes.bpf.h; oe_stall's and acked_ioerr's from the DIRECT
 * ordered extents in flight, ordered.bpf.h). A
 * new hook point is an enumerator of enum bdt_point and one bdt_fired() call
 * in the hook, followed by flush_inode() when it returns nonzero.
 */
#ifndef BDT_TRIGGERS_BPF_H
#define BDT_TRIGGERS_BPF_H

#define BDT_EEXIST 17

enum bdt_point {
	BDT_PT_DIO_BEGIN,  /* a DIO request begins (iomap_dio_rw_begin, btrfs_dio_write/read) */
	BDT_PT_DIO_END,    /* a DIO request completes (iomap_dio_complete) */
	BDT_PT_EXTENT_RET, /* btrfs_get_extent / add_extent_mapping returned (function hooks) */
	BDT_PT_EM_EXIST,   /* btrfs_handle_em_exist */
	BDT_PT_OE,         /* an ordered-extent event (type: the record's event type) */
	BDT_PT_CSUM,       /* a data checksum failure */
};

/* What a hook point saw. Only the fields of its point are meaningful. */
struct bdt_facts {
	u32 point;             /* enum bdt_point */
	u16 type;              /* BDT_PT_OE: the event type (BDT_EV_OE_*) */
	bool write;            /* DIO: a write */
	bool nodatasum;        /* DIO begin: the file has no data checksums */
	bool user_task;        /* BDT_PT_OE: the current task is not a kernel thread */
	bool uptodate;         /* BDT_PT_OE, oe_finish: the I/O succeeded */
	s64 ret;               /* DIO end, extent-map returns */
	s32 error;             /* DIO end: the dio's error */
	u64 count;             /* DIO: bytes asked for (this part) */
	u64 done_before;       /* DIO: bytes done by the earlier parts of a continued write */
	u32 buf_flags;         /* DIO begin: BDT_F_BUF_* of the write buffer's VMA */
	u64 buf_ino;           /* DIO begin: inode the buffer maps (0: anonymous memory) */
	u64 kflags;            /* BDT_PT_OE: the ordered extent's flags (kernel bits) */
	u64 stalled_ino;       /* DIO end: a request on this filesystem that began before
				* this one, unemitted and in flight past the stall
				* threshold, is on this inode (0: none; stall_scan());
				* BDT_PT_OE, a removal: a DIRECT ordered extent added
				* before this one is open past the threshold on this
				* inode (ordered.bpf.h oe_stall_scan()) */
	u64 stalled_ts;        /* DIO end: ... and began then */
	u32 stalled_tid;       /* DIO end: ... by this thread */
	u64 stalled_later;     /* DIO end: ... and at least this many requests on the
				* filesystem that began after it completed (0: not
				* counted; stall_scan()) */
	bool direct_written;   /* CSUM: the file has remembered direct writes;
				* BDT_PT_OE, a buffered oe_add: it rewrote one
				* (direct_writes.bpf.h) */
	bool acked_write;      /* BDT_PT_OE, IOERR at oe_mark_finished / oe_remove of a
				* DIRECT extent: it is kept with a write that returned
				* unemitted with bytes acknowledged (ordered.bpf.h
				* oe_acked_of()) */
};

static __always_inline bool oe_flag(u64 kflags, u32 bit)
{
	return bit < 64 && ((kflags >> (bit & 63)) & 1);
}

static __always_inline bool dio_failed(const struct bdt_facts *f)
{
	return (f->ret < 0 && f->ret != -BDT_EAGAIN) || (f->error != 0 && f->error != -BDT_EAGAIN);
}

/* (trigger, hook point, condition) */
#define BDT_TRIGGERS(X)                                                                       \
	X(ERRNO, DIO_END, dio_failed(f))                                                      \
	X(ERRNO, EXTENT_RET, f->ret < 0 && f->ret >= -4095)                                   \
	X(EEXIST, DIO_END, f->ret == -BDT_EEXIST || f->error == -BDT_EEXIST)                  \
	X(EEXIST, EXTENT_RET, f->ret == -BDT_EEXIST)                                          \
	X(CONTINUED, DIO_BEGIN, f->done_before > 0)                                           \
	X(SHORT, DIO_END, f->write && f->ret >= 0 && (u64)f->ret < f->done_before + f->count) \
	X(EM_EXIST, EM_EXIST, true)                                                           \
	X(BUF_SHARED, DIO_BEGIN, f->write && !f->nodatasum &&                                 \
		(f->buf_flags & (BDT_F_BUF_SHARED | BDT_F_BUF_WRITABLE)) ==                   \
			(BDT_F_BUF_SHARED | BDT_F_BUF_WRITABLE))                              \
	X(BUF_FILE, DIO_BEGIN, f->write && f->buf_ino != 0)                                   \
	X(OE_BUFFERED, OE, f->type == BDT_EV_OE_ADD && f->user_task &&                        \
		oe_direct_bit < 64 && !oe_flag(f->kflags, oe_direct_bit))                     \
	X(OE_IOERR, OE, oe_flag(f->kflags, oe_ioerr_bit) ||                                   \
		(f->type == BDT_EV_OE_FINISH && !f->uptodate))                                \
	X(CSUM, CSUM, true)                                                                   \
	X(STALL, DIO_END, f->stalled_ino != 0)                                                \
	X(CSUM_DIRECT, CSUM, f->direct_written)                                               \
	X(CSUM_DIRECT, OE, f->type == BDT_EV_OE_ADD && f->direct_written)                     \
	X(OE_STALL, OE, f->stalled_ino != 0)                                                  \
	X(ACKED_IOERR, OE, f->acked_write)

/* The triggers that fire for these facts (a mask of 1 << BDT_TRIG_*), among
 * those trigger_mask asks for. Called with a constant point, so the
 * compiler keeps only that point's lines. */
static __always_inline u32 bdt_fired(const struct bdt_facts *f)
{
	u32 m = 0;

#define BDT_TRIGGER_TEST(name, pt, cond)                                                      \
	if (f->point == BDT_PT_##pt && (trigger_mask & (1u << BDT_TRIG_##name)) && (cond))    \
		m |= 1u << BDT_TRIG_##name;
	BDT_TRIGGERS(BDT_TRIGGER_TEST)
#undef BDT_TRIGGER_TEST
	return m;
}

#endif /* BDT_TRIGGERS_BPF_H */
