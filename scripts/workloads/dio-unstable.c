/*
 * dio-unstable - O_DIRECT writes from a buffer that another process keeps modifying while the I/O is
 * in flight (the 2011 unstable-pages checksum bug, dio-unstable-pages). Re-written after the reproducer in the 2011 thread: the
 * buffer is MAP_SHARED|MAP_ANONYMOUS, a forked child rewrites it in a tight loop, the parent writes it
 * to the file with O_DIRECT and reads it back with O_DIRECT, until the time limit.
 *
 * On a file with data checksums, a truly direct write computes the checksum over bytes that may
 * change before the device reads them: later reads fail with EIO and the kernel logs "csum failed".
 * Kernels with 968f19c5b1b7 ("btrfs: always fallback to buffered write if the inode requires
 * checksum") copy such writes into the page cache instead, so nothing fails. A nocow file
 * (NODATASUM) is always written directly and has no checksum to fail.
 *
 * At the end the file's pages are dropped (fsync + POSIX_FADV_DONTNEED) and the whole file is read
 * once more, buffered, so that a checksum mismatch on disk shows up as EIO here.
 *
 * A read back that succeeds is "torn" when the bytes the child rewrites (every 64th) are not all
 * equal: the write carried a mix of several states of the buffer. That is the writer's own race and
 * happens on every kernel; what differs is what the kernel made of it: a truly direct write to a
 * checksummed file stores checksums of other bytes (EIO on read, no torn data returned), a buffered
 * fallback checksums the page-cache copy (torn reads, no EIO), a nocow file has no checksum (torn
 * reads, no EIO).
 *
 * --write-only leaves out the O_DIRECT reads (a writer that only writes with O_DIRECT, like a
 * database log); --ranges N writes round-robin into N ranges of the buffer's size with a gap of
 * the same size between them; --count N stops after N writes.
 *
 * Exit status: 0 no I/O error; 1 usage/setup error; 3 at least one EIO (or other I/O error).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <signal.h>
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

static struct {
	const char *dir;
	int nocow;
	size_t size;
	double duration;
	int keep;
	int write_only;
	unsigned ranges;
	unsigned long count;
} o = {.size = 1 << 20, .duration = 5.0, .ranges = 1};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dio-unstable [options] DIR\n"
		"O_DIRECT write + read-back loop from a MAP_SHARED anonymous buffer that a forked child keeps\n"
		"modifying (the 2011 unstable-pages checksum bug). DIR must be on btrfs.\n"
		"  -m, --mode csum|nocow  csum: the file keeps data checksums (default); nocow: chattr +C\n"
		"  -s, --size BYTES       buffer and file size (default 1 MiB, multiple of 4096)\n"
		"  -d, --duration SEC     how long to loop (default 5)\n"
		"  -k, --keep             keep the file\n"
		"  -w, --write-only       no O_DIRECT reads in the loop (the final buffered re-read stays)\n"
		"  -r, --ranges N         write round-robin into N ranges [2*i*size, (2*i+1)*size)\n"
		"  -n, --count N          stop after N writes (default: only the duration)\n"
		"  -h, --help             this help\n"
		"Prints 'dio-unstable: mode=... ino=... writes=... reads=... short_writes=... write_errors=...\n"
		"read_errors=... eio=... final_read_errors=... torn_reads=... elapsed=...' (torn: a read\n"
		"back mixing several states of the buffer).\n"
		"Exit: 0 no I/O error, 1 usage/setup error, 3 an I/O error (EIO = checksum failure).\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{"mode", required_argument, 0, 'm'}, {"size", required_argument, 0, 's'},
		{"duration", required_argument, 0, 'd'}, {"keep", no_argument, 0, 'k'},
		{"write-only", no_argument, 0, 'w'}, {"ranges", required_argument, 0, 'r'},
		{"count", required_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "m:s:d:kwr:n:h", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "nocow"))
				o.nocow = 1;
			else if (strcmp(optarg, "csum"))
				return -1;
			break;
		case 's': o.size = strtoull(optarg, &end, 0); if (*end) return -1; break;
		case 'd': o.duration = strtod(optarg, &end); if (*end) return -1; break;
		case 'k': o.keep = 1; break;
		case 'w': o.write_only = 1; break;
		case 'r': o.ranges = strtoul(optarg, &end, 0); if (*end || !o.ranges) return -1; break;
		case 'n': o.count = strtoul(optarg, &end, 0); if (*end) return -1; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc - 1 || !o.size || o.size % 4096)
		return -1;
	o.dir = argv[optind];
	return 0;
}

static void child_loop(volatile unsigned char *buf, size_t size)
{
	unsigned char c = 'b';

	/* parent death ends us too */
	for (;;) {
		for (size_t i = 0; i < size; i += 64)
			buf[i] = c;
		c++;
		if (getppid() == 1)
			_exit(0);
	}
}

int main(int argc, char **argv)
{
	char path[4096];
	unsigned char *obuf, *ibuf;
	unsigned long writes = 0, reads = 0, shorts = 0, werr = 0, rerr = 0, eio = 0, final_err = 0;
	unsigned long torn = 0;
	int fd, flags = 0, status, rc = 0, first_werrno = 0, first_rerrno = 0;
	struct stat st;
	double t0, deadline;
	pid_t pid;

	if (parse(argc, argv)) {
		usage(stderr);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/dio-unstable.%s.%d", o.dir, o.nocow ? "nocow" : "csum", (int)getpid());
	if (posix_memalign((void **)&ibuf, 4096, o.size)) {
		fprintf(stderr, "dio-unstable: out of memory\n");
		return 1;
	}
	obuf = mmap(NULL, o.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (obuf == MAP_FAILED) {
		fprintf(stderr, "dio-unstable: mmap: %s\n", strerror(errno));
		return 1;
	}
	fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_DIRECT, 0600);
	if (fd < 0) {
		fprintf(stderr, "dio-unstable: create %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* Set or clear NOCOW explicitly while the file is empty (it inherits it from a +C directory). */
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		int want = o.nocow ? (flags | FS_NOCOW_FL) : (flags & ~FS_NOCOW_FL);

		if (want != flags && ioctl(fd, FS_IOC_SETFLAGS, &want) != 0) {
			fprintf(stderr, "dio-unstable: cannot %s nocow: %s\n", o.nocow ? "set" : "clear",
				strerror(errno));
			goto fail;
		}
		ioctl(fd, FS_IOC_GETFLAGS, &flags);
	}
	fstat(fd, &st);
	printf("dio-unstable: mode=%s file=%s ino=%llu nocow_attr=%d size=%zu\n", o.nocow ? "nocow" : "csum",
	       path, (unsigned long long)st.st_ino, !!(flags & FS_NOCOW_FL), o.size);
	fflush(stdout);

	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "dio-unstable: fork: %s\n", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child_loop(obuf, o.size);

	t0 = now_s();
	deadline = t0 + o.duration;
	while (now_s() < deadline && (!o.count || writes < o.count)) {
		off_t at = (off_t)(2 * (writes % o.ranges)) * (off_t)o.size;
		ssize_t r;

		memset(obuf, 'a', o.size);
		r = pwrite(fd, obuf, o.size, at);
		writes++;
		if (r < 0) {
			if (!werr++)
				first_werrno = errno;
			if (errno == EIO)
				eio++;
			continue;
		}
		if ((size_t)r < o.size)
			shorts++;
		if (o.write_only)
			continue;
		r = pread(fd, ibuf, o.size, at);
		reads++;
		if (r < 0) {
			if (!rerr++) {
				first_rerrno = errno;
				fprintf(stderr, "dio-unstable: read back failed: %s\n", strerror(errno));
			}
			if (errno == EIO)
				eio++;
		} else {
			for (size_t i = 64; i < (size_t)r; i += 64) {
				if (ibuf[i] != ibuf[0]) {
					torn++;
					break;
				}
			}
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);

	/* Read everything once more from disk, through the page cache, to surface checksum failures. */
	{
		int bfd = open(path, O_RDONLY);

		if (bfd >= 0) {
			fsync(bfd);
			posix_fadvise(bfd, 0, 0, POSIX_FADV_DONTNEED);
			for (off_t off = 0; off < (off_t)(2 * o.ranges - 1) * (off_t)o.size; off += 4096) {
				if (pread(bfd, ibuf, 4096, off) < 0) {
					final_err++;
					if (errno == EIO)
						eio++;
				}
			}
			close(bfd);
		}
	}
	printf("dio-unstable: mode=%s ino=%llu writes=%lu reads=%lu short_writes=%lu write_errors=%lu "
	       "read_errors=%lu eio=%lu final_read_errors=%lu torn_reads=%lu first_write_errno=%d "
	       "first_read_errno=%d elapsed=%.3f\n", o.nocow ? "nocow" : "csum", (unsigned long long)st.st_ino,
	       writes, reads, shorts, werr, rerr, eio, final_err, torn, first_werrno, first_rerrno,
	       now_s() - t0);
	if (werr || rerr || final_err)
		rc = 3;
	goto out;
fail:
	rc = 1;
out:
	close(fd);
	if (!o.keep)
		unlink(path);
	munmap(obuf, o.size);
	free(ibuf);
	return rc;
}
