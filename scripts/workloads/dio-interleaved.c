/*
 * dio-interleaved - two threads doing non-overlapping O_DIRECT I/O inside the same on-disk extents
 * of a preallocated nocow file, with a cold extent-map cache (the 2016 extent-map merge race, em-merge-race).
 *
 * The file is made of many small preallocated extents (one fallocate per extent). Before every round
 * the inode is evicted (close, sync, drop_caches), so the extent maps are read from the B-tree again.
 * In a round, for every extent, the two threads wait on a barrier and then each reads (or writes) one
 * half of it, so both miss the extent-map cache at the same time and both try to insert the map. The
 * loser's insert hits -EEXIST and the kernel takes the path that fires btrfs:btrfs_handle_em_exist;
 * old kernels (< 4.10) could return EEXIST to userspace there.
 *
 * Same idea as fstests generic/391 (src/dio-interleaved), written independently for this project.
 *
 * Exit status: 0 every I/O succeeded; 1 usage or setup error; 3 at least one I/O failed (the symptom).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "wl_clock.h"

struct opts {
	const char *dir;
	unsigned long extent_size;
	unsigned long extents;
	unsigned long rounds;
	double timeout;
	int write;
	int evict;
	int forward;
	int keep;
	int verbose;
};

static struct opts o = {
	.extent_size = 0, .extents = 1024, .rounds = 10, .timeout = 30.0, .evict = 1,
};

static char path[4096];
static int fd = -1;
static pthread_barrier_t barrier;
static unsigned long io_errors;
static int first_errno;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dio-interleaved [options] DIR\n"
		"Two threads do non-overlapping O_DIRECT I/O into the two halves of each preallocated extent\n"
		"of a nocow file in DIR (on btrfs), with the extent-map cache evicted before every round.\n"
		"Provokes btrfs:btrfs_handle_em_exist (the 2016 extent-map merge race, fstests generic/391).\n"
		"  -s, --extent-size BYTES  size of each preallocated extent (default: 2 filesystem blocks)\n"
		"  -n, --extents N          number of extents in the file (default 1024)\n"
		"  -r, --rounds N           rounds (default 10)\n"
		"  -t, --timeout SEC        stop after this many seconds even if rounds remain (default 30)\n"
		"  -w, --write              O_DIRECT writes instead of reads (the extents become written)\n"
		"  -f, --forward            walk the extents from the first to the last (default: last to\n"
		"                           first, so the next extent's map is cached and can merge)\n"
		"      --no-evict           do not evict the inode between rounds (warm cache control run)\n"
		"  -k, --keep               keep the test file\n"
		"  -v, --verbose            one line per round\n"
		"  -h, --help               this help\n"
		"Eviction needs root (writes /proc/sys/vm/drop_caches). Prints a summary line\n"
		"'dio-interleaved: ino=... rounds=... ios=... errors=... elapsed=...'.\n"
		"Exit: 0 all I/O succeeded, 1 usage/setup error, 3 an O_DIRECT I/O failed.\n");
}

static int parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{"extent-size", required_argument, 0, 's'}, {"extents", required_argument, 0, 'n'},
		{"rounds", required_argument, 0, 'r'},      {"timeout", required_argument, 0, 't'},
		{"write", no_argument, 0, 'w'},             {"forward", no_argument, 0, 'f'},
		{"no-evict", no_argument, 0, 'E'},          {"keep", no_argument, 0, 'k'},
		{"verbose", no_argument, 0, 'v'},           {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0}};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "s:n:r:t:wfkvh", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.extent_size = strtoul(optarg, &end, 0); if (*end) return -1; break;
		case 'n': o.extents = strtoul(optarg, &end, 0); if (*end) return -1; break;
		case 'r': o.rounds = strtoul(optarg, &end, 0); if (*end) return -1; break;
		case 't': o.timeout = strtod(optarg, &end); if (*end) return -1; break;
		case 'w': o.write = 1; break;
		case 'f': o.forward = 1; break;
		case 'E': o.evict = 0; break;
		case 'k': o.keep = 1; break;
		case 'v': o.verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc - 1)
		return -1;
	o.dir = argv[optind];
	return 0;
}

static int drop_caches(void)
{
	int dfd;

	sync();
	dfd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (dfd < 0 || write(dfd, "3", 1) != 1) {
		fprintf(stderr, "dio-interleaved: cannot write /proc/sys/vm/drop_caches: %s "
			"(run as root, or use --no-evict)\n", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
}

static int open_file(void)
{
	fd = open(path, (o.write ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "dio-interleaved: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int create_file(void)
{
	int flags = 0;
	unsigned long i;

	fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0) {
		fprintf(stderr, "dio-interleaved: create %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* nocow must be set while the file is empty */
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags |= FS_NOCOW_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			fprintf(stderr, "dio-interleaved: warning: cannot set nocow: %s\n", strerror(errno));
	}
	for (i = 0; i < o.extents; i++) {
		if (fallocate(fd, 0, (off_t)(i * o.extent_size), (off_t)o.extent_size) != 0) {
			fprintf(stderr, "dio-interleaved: fallocate extent %lu: %s\n", i, strerror(errno));
			return -1;
		}
	}
	close(fd);
	fd = -1;
	return 0;
}

struct worker {
	int id;
	void *buf;
	unsigned long ios;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	size_t half = o.extent_size / 2;
	unsigned long k, e;
	ssize_t r;

	for (k = 0; k < o.extents; k++) {
		e = o.forward ? k : o.extents - 1 - k;
		off_t off = (off_t)(e * o.extent_size + (w->id ? half : 0));

		pthread_barrier_wait(&barrier);
		if (o.write)
			r = pwrite(fd, w->buf, half, off);
		else
			r = pread(fd, w->buf, half, off);
		w->ios++;
		if (r != (ssize_t)half) {
			pthread_mutex_lock(&err_lock);
			if (!io_errors++)
				first_errno = r < 0 ? errno : 0;
			if (io_errors <= 10)
				fprintf(stderr, "dio-interleaved: %s(off=%lld len=%zu) = %zd (%s)\n",
					o.write ? "pwrite" : "pread", (long long)off, half, r,
					r < 0 ? strerror(errno) : "short");
			pthread_mutex_unlock(&err_lock);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct statvfs sv;
	struct stat st;
	struct worker w[2];
	pthread_t th;
	unsigned long round, total_ios = 0;
	double t0, deadline;
	int rc = 0, i;

	if (parse(argc, argv)) {
		usage(stderr);
		return 1;
	}
	if (statvfs(o.dir, &sv) != 0) {
		fprintf(stderr, "dio-interleaved: %s: %s\n", o.dir, strerror(errno));
		return 1;
	}
	if (!o.extent_size)
		o.extent_size = 2 * sv.f_bsize;
	if (o.extent_size < 2 * 512 || o.extent_size % (2 * 512) || !o.extents) {
		fprintf(stderr, "dio-interleaved: extent size must be a multiple of 1024 and extents > 0\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/dio-interleaved.%d", o.dir, (int)getpid());
	t0 = now_s();
	deadline = t0 + o.timeout;
	if (create_file())
		goto fail;
	for (i = 0; i < 2; i++) {
		w[i].id = i;
		w[i].ios = 0;
		if (posix_memalign(&w[i].buf, 4096, o.extent_size / 2)) {
			fprintf(stderr, "dio-interleaved: out of memory\n");
			goto fail;
		}
		memset(w[i].buf, 'a' + i, o.extent_size / 2);
	}
	if (o.evict && drop_caches())
		goto fail;
	if (open_file())
		goto fail;
	stat(path, &st);
	printf("dio-interleaved: file %s ino=%llu extents=%lu extent_size=%lu mode=%s order=%s evict=%s\n",
	       path, (unsigned long long)st.st_ino, o.extents, o.extent_size,
	       o.write ? "write" : "read", o.forward ? "forward" : "backward", o.evict ? "yes" : "no");
	fflush(stdout);

	for (round = 0; round < o.rounds && now_s() < deadline; round++) {
		double rs = now_s();

		if (round > 0 && o.evict) {
			close(fd);
			fd = -1;
			if (drop_caches() || open_file())
				goto fail;
		}
		pthread_barrier_init(&barrier, NULL, 2);
		w[0].ios = w[1].ios = 0;
		if (pthread_create(&th, NULL, worker_fn, &w[0])) {
			fprintf(stderr, "dio-interleaved: pthread_create failed\n");
			goto fail;
		}
		worker_fn(&w[1]);
		pthread_join(th, NULL);
		pthread_barrier_destroy(&barrier);
		total_ios += w[0].ios + w[1].ios;
		if (o.verbose)
			printf("dio-interleaved: round %lu ios=%lu errors=%lu %.3fs\n", round + 1,
			       w[0].ios + w[1].ios, io_errors, now_s() - rs);
		fflush(stdout);
	}
	printf("dio-interleaved: ino=%llu rounds=%lu ios=%lu errors=%lu first_errno=%d elapsed=%.3f\n",
	       (unsigned long long)st.st_ino, round, total_ios, io_errors, first_errno, now_s() - t0);
	if (io_errors)
		rc = 3;
	goto out;
fail:
	rc = 1;
out:
	if (fd >= 0)
		close(fd);
	if (!o.keep)
		unlink(path);
	return rc;
}
