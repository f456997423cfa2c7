/* SPDX-License-Identifier: MIT */
/* Built against an installed libsvqiso with nothing but its pkg-config flags. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <svqiso/svqiso.h>

static char guest[2][4096];

int main(void)
{
	SVQISO_OPTS(svqiso_mem_opts, o, .max_regions = 4);
	struct svqiso_mem_region r = { .gpa = 0x10000, .size = 4096,
				       .hva = guest[0], .fd = -1 };
	const struct svqiso_mem_ops *ops = svqiso_mem_ops();
	struct svqiso_mem *mem;
	struct iovec iov[2];
	uint64_t len = 16;
	int n;

	if (strcmp(svqiso_version(), SVQISO_VERSION_STRING)) {
		fprintf(stderr, "library %s, header %s\n", svqiso_version(),
			SVQISO_VERSION_STRING);
		return 1;
	}
	if (svqiso_mem_new(&o, &mem))
		return 1;
	if (svqiso_mem_add_region(mem, &r))
		return 1;
	r.gpa += r.size;
	r.hva = guest[1];
	if (svqiso_mem_add_region(mem, &r) ||
	    svqiso_mem_add_region(mem, &r) != -EEXIST)
		return 1;
	n = svqiso_mem_translate(mem, 0x10ff0, 32, iov, 2);
	if (n != 2 || iov[0].iov_base != &guest[0][4080] ||
	    iov[1].iov_base != &guest[1][0] || iov[1].iov_len != 16)
		return 1;
	if (ops->translate(mem, 0x11000, &len) != guest[1] || len != 16)
		return 1;
	printf("libsvqiso %s: mem ok, %u regions, %d segments\n",
	       svqiso_version(), svqiso_mem_nr_regions(mem), n);
	svqiso_mem_free(mem);
	return 0;
}
