/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * btrfs-dio-trace: how a DIO completion counts in the traffic counts
 * (docs/metrics.md). Plain C shared by the BPF programs (counts.bpf.h) and
 * the unit tests.
 *
 * -EAGAIN (io_uring's or RWF_NOWAIT's attempt, retried from io-wq) is not a
 * request: it counts only as `again`. An error is ret < 0 or error != 0. The
 * bytes are the request's own part: iomap_dio_complete's ret includes the
 * done_before of a continued write. A short write completed without an
 * error and with fewer bytes than it asked for.
 */
#ifndef BDT_DIO_OUTCOME_H
#define BDT_DIO_OUTCOME_H

#define BDT_EAGAIN 11

struct bdt_dio_outcome {
	bool again;
	bool error;
	bool short_write;
	unsigned long long bytes;
};

static __inline__ __attribute__((always_inline)) struct bdt_dio_outcome
bdt_dio_outcome_of(long long ret, int error, bool write, unsigned long long done_before,
		   unsigned long long count)
{
	struct bdt_dio_outcome o = {};

	o.again = ret == -BDT_EAGAIN || (ret <= 0 && error == -BDT_EAGAIN);
	o.error = !o.again && (ret < 0 || error != 0);
	if (ret > 0 && (unsigned long long)ret > done_before)
		o.bytes = (unsigned long long)ret - done_before;
	o.short_write = write && !o.again && ret >= 0 && o.bytes < count;
	return o;
}

#endif /* BDT_DIO_OUTCOME_H */
