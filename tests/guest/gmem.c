/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one memfd, mapped piecewise so that neighbouring guest-physical
 * regions are never neighbours in host memory. A buffer crossing a region
 * boundary is then a real two-region buffer to anyone translating it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"

struct gmem {
	int fd;
	uint64_t gpa;
	uint64_t size;
	uint64_t region_size;
	unsigned int nregions;
	void *resv;			/* reservation covering every map and gap */
	size_t resv_size;
	uint8_t *hva[GMEM_MAX_REGIONS];
	uint64_t top;			/* next free gpa */
};

struct gmem *gmem_new(uint64_t gpa, uint64_t size, unsigned int nregions)
{
	long page = sysconf(_SC_PAGESIZE);
	struct gmem *gm;
	unsigned int i;
	int err;

	if (nregions < 1 || nregions > GMEM_MAX_REGIONS || !size ||
	    size % ((uint64_t)nregions * page) || gpa % page ||
	    gpa + size - 1 < gpa) {
		errno = EINVAL;
		return NULL;
	}
	gm = calloc(1, sizeof(*gm));
	if (!gm)
		return NULL;
	gm->gpa = gpa;
	gm->size = size;
	gm->nregions = nregions;
	gm->region_size = size / nregions;
	gm->top = gpa;
	gm->fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (gm->fd < 0)
		goto fail;
	if (ftruncate(gm->fd, (off_t)size))
		goto fail;
	/*
	 * Reserve room for every region plus one gap page after each, then
	 * map the pieces over it; the gaps stay PROT_NONE.
	 */
	gm->resv_size = size + (size_t)nregions * page;
	gm->resv = mmap(NULL, gm->resv_size, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (gm->resv == MAP_FAILED) {
		gm->resv = NULL;
		goto fail;
	}
	for (i = 0; i < nregions; i++) {
		uint8_t *want = (uint8_t *)gm->resv + i * (gm->region_size + page);
		void *p = mmap(want, gm->region_size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED, gm->fd,
			       (off_t)(i * gm->region_size));

		if (p == MAP_FAILED)
			goto fail;
		gm->hva[i] = p;
	}
	return gm;
fail:
	err = errno;
	gmem_free(gm);
	errno = err;
	return NULL;
}

void gmem_free(struct gmem *gm)
{
	if (!gm)
		return;
	if (gm->resv)
		munmap(gm->resv, gm->resv_size);
	if (gm->fd >= 0)
		close(gm->fd);
	free(gm);
}

unsigned int gmem_nr_regions(const struct gmem *gm)
{
	return gm->nregions;
}

int gmem_region(const struct gmem *gm, unsigned int i, struct svqiso_mem_region *out)
{
	if (i >= gm->nregions)
		return -ENOENT;
	out->gpa = gm->gpa + i * gm->region_size;
	out->size = gm->region_size;
	out->hva = gm->hva[i];
	out->fd = gm->fd;
	out->fd_offset = i * gm->region_size;
	return 0;
}

int gmem_fd(const struct gmem *gm)
{
	return gm->fd;
}

uint64_t gmem_base(const struct gmem *gm)
{
	return gm->gpa;
}

uint64_t gmem_size(const struct gmem *gm)
{
	return gm->size;
}

/* Region holding @gpa and the bytes left in it from there; -1 if none. */
static int locate(const struct gmem *gm, uint64_t gpa, uint64_t *left)
{
	uint64_t off;
	unsigned int i;

	*left = 0;
	if (gpa < gm->gpa || gpa - gm->gpa >= gm->size)
		return -1;
	off = gpa - gm->gpa;
	i = off / gm->region_size;
	*left = gm->region_size - off % gm->region_size;
	return (int)i;
}

void *gmem_hva(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	uint64_t left;
	int i;

	if (!len)
		return NULL;
	i = locate(gm, gpa, &left);
	if (i < 0 || len > left)
		return NULL;
	return gm->hva[i] + (gpa - gm->gpa) % gm->region_size;
}

/* Walk [@gpa, @gpa + @len) region by region, copying to or from @buf. */
static int copy(const struct gmem *gm, uint64_t gpa, void *buf, size_t len,
		bool to_guest)
{
	uint8_t *b = buf;

	if (len && (gpa < gm->gpa || gpa - gm->gpa > gm->size ||
		    len > gm->size - (gpa - gm->gpa)))
		return -EFAULT;
	while (len) {
		uint64_t left;
		int i = locate(gm, gpa, &left);
		uint8_t *h = gm->hva[i] + (gpa - gm->gpa) % gm->region_size;
		size_t n = len < left ? len : left;

		if (to_guest)
			memcpy(h, b, n);
		else
			memcpy(b, h, n);
		b += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

int gmem_write(struct gmem *gm, uint64_t gpa, const void *buf, size_t len)
{
	return copy(gm, gpa, (void *)buf, len, true);
}

int gmem_read(const struct gmem *gm, uint64_t gpa, void *buf, size_t len)
{
	return copy(gm, gpa, buf, len, false);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

uint64_t gmem_alloc(struct gmem *gm, uint64_t len, uint64_t align)
{
	uint64_t end = gm->gpa + gm->size, at;

	if (!align)
		align = 1;
	if (!len || (align & (align - 1)))
		return 0;
	at = align_up(gm->top, align);
	if (at < gm->top || at >= end || len > end - at)
		return 0;
	gm->top = at + len;
	return at;
}

uint64_t gmem_alloc_contig(struct gmem *gm, uint64_t len, uint64_t align)
{
	uint64_t saved = gm->top, at, left;

	if (len > gm->region_size)
		return 0;
	at = gmem_alloc(gm, len, align);
	if (!at || (locate(gm, at, &left), len <= left))
		return at;
	/* Crossed a boundary: start over at the next region. */
	gm->top = at + left;
	at = gmem_alloc(gm, len, align);
	if (!at)
		gm->top = saved;
	return at;
}

void *gmem_area(struct gmem *gm, uint64_t len, uint64_t align, uint64_t *gpa)
{
	void *h;

	*gpa = gmem_alloc_contig(gm, len, align);
	if (!*gpa)
		return NULL;
	h = gmem_hva(gm, *gpa, len);
	memset(h, 0, len);
	return h;
}

uint64_t gmem_alloc_top(const struct gmem *gm)
{
	return gm->top;
}

int gmem_set_alloc_top(struct gmem *gm, uint64_t gpa)
{
	if (gpa < gm->gpa || gpa - gm->gpa > gm->size)
		return -EINVAL;
	gm->top = gpa;
	return 0;
}
