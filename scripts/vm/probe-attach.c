// SPDX-License-Identifier: GPL-2.0
/* probe-attach OBJ FUNC...: for each kernel function, tries a real fentry,
 * fexit, kprobe and kretprobe attach with the empty programs of OBJ and prints
 * one line per function: "attach: FUNC fentry=ok fexit=ok kprobe=ok
 * kretprobe=ok" or the error. A VM-tier fact finder (docs/vm-tier.md), not
 * part of the tool. */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int quiet(enum libbpf_print_level l, const char *f, va_list a)
{
	(void)l; (void)f; (void)a;
	return 0;
}

static const char *result(int err, char *buf, size_t n)
{
	if (!err)
		return "ok";
	snprintf(buf, n, "ERR(%s)", err == -524 ? "ENOTSUPP" : strerror(-err));
	return buf;
}

static const char *names[] = { "probe_fentry", "probe_fexit", "probe_kprobe", "probe_kretprobe" };

/* Opens OBJ with the programs selected by mask (bit k = names[k]), retargets
 * fentry/fexit at fn, loads, and attaches each selected program to fn.
 * err[k] gets 0 or -errno for each selected k. Returns the load error. */
static int try_attach(const char *path, const char *fn, unsigned mask, int err[4])
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *p, *progs[4] = { 0 };
	int lerr = 0;

	if (!obj)
		return -errno;
	bpf_object__for_each_program(p, obj) {
		for (int k = 0; k < 4; k++) {
			if (strcmp(bpf_program__name(p), names[k]))
				continue;
			bpf_program__set_autoload(p, (mask >> k) & 1);
			progs[k] = p;
		}
	}
	for (int k = 0; k < 2 && !lerr; k++)
		if ((mask >> k) & 1)
			lerr = bpf_program__set_attach_target(progs[k], 0, fn);
	if (!lerr)
		lerr = bpf_object__load(obj);
	for (int k = 0; k < 4; k++) {
		struct bpf_link *link;

		if (!((mask >> k) & 1))
			continue;
		if (lerr) {
			err[k] = lerr;
			continue;
		}
		link = k < 2 ? bpf_program__attach(progs[k])
			     : bpf_program__attach_kprobe(progs[k], k == 3, fn);
		err[k] = link ? 0 : -errno;
		bpf_link__destroy(link);
	}
	bpf_object__close(obj);
	return lerr;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s OBJ FUNC...\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	for (int i = 2; i < argc; i++) {
		const char *fn = argv[i];
		char buf[4][64];
		int err[4] = { 0 };

		/* All four in one load (one vmlinux BTF parse); if the load fails,
		 * find out which kind is to blame one by one. */
		if (try_attach(argv[1], fn, 0xf, err))
			for (int k = 0; k < 4; k++)
				try_attach(argv[1], fn, 1u << k, err);
		printf("attach: %s fentry=%s fexit=%s kprobe=%s kretprobe=%s\n", fn,
		       result(err[0], buf[0], 64), result(err[1], buf[1], 64),
		       result(err[2], buf[2], 64), result(err[3], buf[3], 64));
		fflush(stdout);
	}
	return 0;
}
