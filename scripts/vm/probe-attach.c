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
	snprintf(buf, n, "ERR(%s)", strerror(-err));
	return buf;
}

int main(int argc, char **argv)
{
	static const char *names[] = { "probe_fentry", "probe_fexit", "probe_kprobe", "probe_kretprobe" };

	if (argc < 3) {
		fprintf(stderr, "usage: %s OBJ FUNC...\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	for (int i = 2; i < argc; i++) {
		const char *fn = argv[i];
		char buf[4][64];
		int err[4];

		for (int k = 0; k < 4; k++) {
			struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
			struct bpf_program *p, *prog = NULL;
			struct bpf_link *link;

			err[k] = obj ? 0 : -errno;
			if (!obj)
				continue;
			bpf_object__for_each_program(p, obj) {
				int mine = !strcmp(bpf_program__name(p), names[k]);
				bpf_program__set_autoload(p, mine);
				if (mine)
					prog = p;
			}
			if (k < 2)
				err[k] = bpf_program__set_attach_target(prog, 0, fn);
			if (!err[k])
				err[k] = bpf_object__load(obj);
			if (!err[k]) {
				if (k < 2)
					link = bpf_program__attach(prog);
				else
					link = bpf_program__attach_kprobe(prog, k == 3, fn);
				err[k] = link ? 0 : -errno;
				bpf_link__destroy(link);
			}
			bpf_object__close(obj);
		}
		printf("attach: %s fentry=%s fexit=%s kprobe=%s kretprobe=%s\n", fn,
		       result(err[0], buf[0], 64), result(err[1], buf[1], 64),
		       result(err[2], buf[2], 64), result(err[3], buf[3], 64));
		fflush(stdout);
	}
	return 0;
}
