/*
 * dio-buf-fault - an O_DIRECT write whose user buffer is an mmap of a cold file, so the kernel can
 * only pin the pages that are resident, submits a partial write, faults the rest in and continues
 * (the 2023 DIO short-write bug, dio-short-write; fstests generic/708 and generic/729 test the same thing).
 *
 * Modes:
 *   copy  (default) the buffer is a mapping of a separate source file; the destination is a new nocow
 *         file in DIR. After every write the destination is read back with O_DIRECT and compared with
 *         the source. A mismatch (e.g. a hole reading back as zeros: the 5.16-6.3 bug) is the symptom.
 *   self  the buffer is a shared mapping of the destination file itself, and the written range
 *         overlaps the mapped range the buffer comes from: write(fd, map + 0, LEN/2) at LEN/4. Under
 *         v3 of the 2023 short-write patch (not merged) this deadlocked. The write runs in a child process; if it does not
 *         finish within --timeout the child is killed and the run reports a hang.
 * Before each iteration the source pages are written back and dropped from the page cache
 * (fsync + POSIX_FADV_DONTNEED) and only the first page of the mapping is touched.
 *
 * Every 4 KiB block of the source holds its own block number and the iteration, so any misplaced,
 * stale or zero block is identified.
 *
 * Exit status: 0 all writes completed and verified; 1 usage/setup error; 3 data mismatch or write
 * error; 4 a write did not complete within the timeout (hang).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl_clock.h"

#define BLK 4096

static struct {
	const char *dir;
	int self;
	size_t size;
	unsigned long iterations;
	double timeout;
	int keep;
	int verbose;
} o = {.size = 8 << 20, .iterations = 1, .timeout = 20.0};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dio-buf-fault [options] DIR\n"
		"O_DIRECT write from an mmap of a cold file (only its first page resident), so the write\n"
		"faults part-way and is continued (the 2023 DIO short-write bug, fstests generic/708, generic/729).\n"
		"  -m, --mode copy|self   copy: map a source file, write to a new nocow file (default)\n"
		"                         self: map the destination file and write LEN/2 bytes from the\n"
		"                         start of the mapping at offset LEN/4 (overlapping its own buffer)\n"
		"  -s, --size BYTES       file size LEN (default 8 MiB, multiple of 4096)\n"
		"  -n, --iterations N     repeat N times (default 1); each iteration re-cools the source\n"
		"  -t, --timeout SEC      per-iteration limit for the write (default 20); exceeding it is a hang:\n"
		"                         the writer is killed, the run stops and the files are kept\n"
		"  -k, --keep             keep the files\n"
		"  -v, --verbose          one line per iteration\n"
		"  -h, --help             this help\n"
		"Prints 'dio-buf-fault: mode=... iterations=... writes=... short_writes=... mismatches=...\n"
		"hangs=... elapsed=...'.\n"
		"Exit: 0 ok, 1 usage/setup error, 3 data mismatch or write error, 4 hang (timeout).\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{"mode", required_argument, 0, 'm'},  {"size", required_argument, 0, 's'},
		{"iterations", required_argument, 0, 'n'}, {"timeout", required_argument, 0, 't'},
		{"keep", no_argument, 0, 'k'},        {"verbose", no_argument, 0, 'v'},
		{"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "m:s:n:t:kvh", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "self"))
				o.self = 1;
			else if (strcmp(optarg, "copy"))
				return -1;
			break;
		case 's': o.size = strtoull(optarg, &end, 0); if (*end) return -1; break;
		case 'n': o.iterations = strtoul(optarg, &end, 0); if (*end) return -1; break;
		case 't': o.timeout = strtod(optarg, &end); if (*end) return -1; break;
		case 'k': o.keep = 1; break;
		case 'v': o.verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc - 1 || !o.size || o.size % (4 * BLK) || !o.iterations)
		return -1;
	o.dir = argv[optind];
	return 0;
}

/* Block b of iteration it: 8-byte words (it << 32 | b) followed by the word's index. */
static void fill_block(uint64_t *p, unsigned long it, uint64_t b)
{
	size_t i;

	for (i = 0; i < BLK / sizeof(uint64_t); i += 2) {
		p[i] = ((uint64_t)it << 32) | b;
		p[i + 1] = i;
	}
}

static int block_is(const uint64_t *p, unsigned long it, uint64_t b)
{
	return p[0] == (((uint64_t)it << 32) | b) && p[BLK / sizeof(uint64_t) - 1] == BLK / sizeof(uint64_t) - 2 &&
	       p[BLK / sizeof(uint64_t) - 2] == p[0];
}

static int create_nocow(const char *path, int extra_flags)
{
	int fd, flags = 0;

	fd = open(path, O_CREAT | O_TRUNC | O_RDWR | extra_flags, 0600);
	if (fd < 0) {
		fprintf(stderr, "dio-buf-fault: create %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags |= FS_NOCOW_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			fprintf(stderr, "dio-buf-fault: warning: cannot set nocow on %s: %s\n", path,
				strerror(errno));
	}
	return fd;
}

/* Fill the whole file with iteration `it`'s pattern, write it back, drop its pages from the cache. */
static int write_pattern_cold(int fd, unsigned long it)
{
	const size_t chunk = 1 << 20;
	uint64_t *buf = aligned_alloc(BLK, chunk);
	size_t off, n, j;

	if (!buf)
		return -1;
	for (off = 0; off < o.size; off += n) {
		n = o.size - off < chunk ? o.size - off : chunk;
		for (j = 0; j < n / BLK; j++)
			fill_block(buf + j * (BLK / sizeof(uint64_t)), it, off / BLK + j);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			fprintf(stderr, "dio-buf-fault: pattern write: %s\n", strerror(errno));
			free(buf);
			return -1;
		}
	}
	free(buf);
	if (fsync(fd) != 0) {
		fprintf(stderr, "dio-buf-fault: fsync: %s\n", strerror(errno));
		return -1;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	return 0;
}

/*
 * The O_DIRECT write loop, continued after short writes like any careful application.
 * Returns 0, or -errno. Counts short writes.
 */
static int dio_write_all(int fd, const char *buf, size_t len, off_t off, unsigned long *shorts)
{
	while (len) {
		ssize_t r = pwrite(fd, buf, len, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		if ((size_t)r < len)
			(*shorts)++;
		buf += r;
		len -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Run the write in a child so that a hang can be bounded. Returns 0 ok, -errno, or 1 for timeout. */
static int write_in_child(int fd, const char *buf, size_t len, off_t off, unsigned long *shorts)
{
	int pfd[2];
	pid_t pid;
	double deadline;
	int status, rc;
	unsigned long child_shorts = 0;

	if (pipe(pfd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		volatile char c = buf[0]; /* the first page is resident, the rest is not */
		(void)c;
		close(pfd[0]);
		rc = dio_write_all(fd, buf, len, off, &child_shorts);
		if (write(pfd[1], &child_shorts, sizeof(child_shorts)) < 0)
			_exit(100);
		_exit(rc ? (-rc & 0x7f) : 0);
	}
	close(pfd[1]);
	deadline = now_s() + o.timeout;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (now_s() >= deadline) {
			kill(pid, SIGKILL);
			/* A task stuck in the kernel may not die; wait a little, then give up on it. */
			for (int i = 0; i < 20 && waitpid(pid, &status, WNOHANG) == 0; i++)
				usleep(100000);
			close(pfd[0]);
			return 1;
		}
		usleep(10000);
	}
	if (read(pfd[0], &child_shorts, sizeof(child_shorts)) == sizeof(child_shorts))
		*shorts += child_shorts;
	close(pfd[0]);
	if (!WIFEXITED(status))
		return -EINTR;
	return WEXITSTATUS(status) ? -WEXITSTATUS(status) : 0;
}

/* Compare file blocks [first, first+n) with what they should hold. Returns mismatching blocks. */
static unsigned long verify(int fd, uint64_t first, uint64_t n, unsigned long it, uint64_t src_first,
			    uint64_t alt_src_first, int alt_ok)
{
	uint64_t *blk = aligned_alloc(BLK, BLK);
	unsigned long bad = 0, zeros = 0;
	uint64_t j;

	for (j = 0; j < n; j++) {
		ssize_t r = pread(fd, blk, BLK, (off_t)((first + j) * BLK));
		int ok;

		if (r != BLK) {
			fprintf(stderr, "dio-buf-fault: read back block %llu: %s\n",
				(unsigned long long)(first + j), r < 0 ? strerror(errno) : "short");
			bad++;
			continue;
		}
		ok = block_is(blk, it, src_first + j);
		/* self mode: the source block may already have been overwritten by this very write */
		if (!ok && alt_ok && j >= alt_src_first)
			ok = block_is(blk, it, src_first + j - alt_src_first);
		if (!ok) {
			if (blk[0] == 0 && blk[1] == 0)
				zeros++;
			if (bad < 5)
				fprintf(stderr, "dio-buf-fault: block %llu holds %#llx, expected block %llu of "
					"iteration %lu\n", (unsigned long long)(first + j),
					(unsigned long long)blk[0], (unsigned long long)(src_first + j), it);
			bad++;
		}
	}
	if (bad)
		fprintf(stderr, "dio-buf-fault: %lu bad blocks (%lu all-zero)\n", bad, zeros);
	free(blk);
	return bad;
}

int main(int argc, char **argv)
{
	char src[4096], dst[4096];
	int sfd = -1, dfd = -1, rdfd = -1, rc = 0;
	unsigned long it, writes = 0, shorts = 0, mismatches = 0, hangs = 0, errors = 0;
	struct stat st_src, st_dst;
	double t0 = now_s();

	if (parse(argc, argv)) {
		usage(stderr);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(src, sizeof(src), "%s/dio-buf-fault.src.%d", o.dir, (int)getpid());
	snprintf(dst, sizeof(dst), "%s/dio-buf-fault.dst.%d", o.dir, (int)getpid());

	if (o.self) {
		/* one nocow file: buffered fd for the pattern, O_DIRECT fd for the write */
		sfd = create_nocow(src, 0);
		if (sfd < 0)
			return 1;
		dfd = open(src, O_RDWR | O_DIRECT);
	} else {
		sfd = open(src, O_CREAT | O_TRUNC | O_RDWR, 0600);
		if (sfd < 0) {
			fprintf(stderr, "dio-buf-fault: create %s: %s\n", src, strerror(errno));
			return 1;
		}
		int tmp = create_nocow(dst, 0);
		if (tmp < 0)
			goto fail;
		close(tmp);
		dfd = open(dst, O_RDWR | O_DIRECT);
	}
	if (dfd < 0) {
		fprintf(stderr, "dio-buf-fault: open O_DIRECT: %s\n", strerror(errno));
		goto fail;
	}
	rdfd = open(o.self ? src : dst, O_RDONLY | O_DIRECT);
	if (rdfd < 0)
		goto fail;
	fstat(sfd, &st_src);
	fstat(dfd, &st_dst);
	printf("dio-buf-fault: mode=%s src=%s ino=%llu dst_ino=%llu size=%zu\n", o.self ? "self" : "copy",
	       src, (unsigned long long)st_src.st_ino, (unsigned long long)st_dst.st_ino, o.size);
	fflush(stdout);

	for (it = 1; it <= o.iterations; it++) {
		double is = now_s();
		size_t len = o.self ? o.size / 2 : o.size;
		off_t off = o.self ? (off_t)(o.size / 4) : 0;
		unsigned long bad, s0 = shorts;
		char *map;
		int r;

		if (!o.self && ftruncate(dfd, 0) != 0)
			goto fail;
		/*
		 * self: write the pattern through the O_DIRECT descriptor (the file is nocow, so it really
		 * goes direct), so this process never does a buffered write to the file it opened with
		 * O_DIRECT (a tracer could take that for a silent buffered fallback).
		 */
		if (write_pattern_cold(o.self ? dfd : sfd, it))
			goto fail;
		map = mmap(NULL, o.size, PROT_READ, o.self ? MAP_SHARED : MAP_PRIVATE, sfd, 0);
		if (map == MAP_FAILED) {
			fprintf(stderr, "dio-buf-fault: mmap: %s\n", strerror(errno));
			goto fail;
		}
		r = write_in_child(dfd, map, len, off, &shorts);
		munmap(map, o.size);
		writes++;
		if (r == 1) {
			hangs++;
			fprintf(stderr, "dio-buf-fault: iteration %lu: write did not complete within %g s "
				"(hang)\n", it, o.timeout);
			printf("dio-buf-fault: iteration %lu HANG\n", it);
			break; /* the file may be locked by the stuck task: stop here */
		}
		if (r < 0) {
			errors++;
			fprintf(stderr, "dio-buf-fault: iteration %lu: write failed: %s\n", it, strerror(-r));
			continue;
		}
		if (o.self)
			bad = verify(rdfd, o.size / 4 / BLK, len / BLK, it, 0, o.size / 4 / BLK, 1);
		else
			bad = verify(rdfd, 0, len / BLK, it, 0, 0, 0);
		if (bad)
			mismatches++;
		if (o.verbose)
			printf("dio-buf-fault: iteration %lu short_writes=%lu bad_blocks=%lu %.3fs\n", it,
			       shorts - s0, bad, now_s() - is);
		fflush(stdout);
	}
	printf("dio-buf-fault: mode=%s iterations=%lu writes=%lu short_writes=%lu errors=%lu mismatches=%lu "
	       "hangs=%lu elapsed=%.3f\n", o.self ? "self" : "copy", it > o.iterations ? o.iterations : it,
	       writes, shorts, errors, mismatches, hangs, now_s() - t0);
	if (hangs)
		rc = 4;
	else if (mismatches || errors)
		rc = 3;
	goto out;
fail:
	rc = 1;
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	if (rdfd >= 0)
		close(rdfd);
	if (!o.keep && !hangs) {
		unlink(src);
		if (!o.self)
			unlink(dst);
	}
	return rc;
}
