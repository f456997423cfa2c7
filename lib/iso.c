/* SPDX-License-Identifier: MIT */
/*
 * Isolated memory: memfd regions at IOVAs handed out by a bump pointer.
 *
 * The region table is a svqiso_mem keyed by IOVA (gpa = iova, hva = uaddr),
 * so the ring and copy code translate isolated addresses exactly as they
 * translate guest ones. IOVAs only grow: a backend that kept an address from
 * a removed region (a bug, or hostility) then faults on a hole instead of
 * reading a newer region's data. Each region starts on a 2 MiB boundary,
 * which keeps every region huge-page aligned in the backend's view as well.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "iso.h"

/* memfd names are limited to 249 bytes: room for the prefix and "-<iova>". */
#define NAME_MAX_PREFIX	200

struct svqiso_iso {
	/*
	 * Guards @mem and @next_iova: the shadow virtqueues of one device may
	 * make and drop one-off regions from their own threads (svq.h). The
	 * region callbacks run under it, so they are serialized too; it is
	 * recursive, so they may read the regions.
	 */
	pthread_mutex_t lock;
	struct svqiso_mem *mem;		/* the live regions, by IOVA */
	uint64_t next_iova;		/* next base; only ever grows */
	uint64_t page;
	svqiso_region_fn region_add;
	svqiso_region_fn region_del;
	void *region_ctx;
	svqiso_log_fn log;
	void *log_ctx;
	char name[NAME_MAX_PREFIX + 1];
};

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_iso_opts) == 64, "svqiso_iso_opts is append-only");
_Static_assert(sizeof(struct svqiso_region) == 40, "svqiso_region is ABI");
#endif

static uint64_t round_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) & ~(align - 1);
}

static void to_region(const struct svqiso_mem_region *m, struct svqiso_region *r)
{
	*r = (struct svqiso_region){
		.iova = m->gpa,
		.size = m->size,
		.uaddr = m->hva,
		.fd = m->fd,
		.fd_offset = m->fd_offset,
	};
}

int svqiso_iso_new(const struct svqiso_iso_opts *opts, struct svqiso_iso **out)
{
	SVQISO_OPTS(svqiso_mem_opts, mo, .max_regions = SVQISO_MEM_MAX_REGIONS);
	struct svqiso_iso *iso;
	const char *name;
	uint64_t base;
	long page;
	int err;

	if (!out || !SVQ_OPTS_OK(svqiso_iso_opts, opts))
		return -EINVAL;
	base = SVQ_OPTS_GET(opts, iova_base, 0);
	if (!base)
		base = SVQISO_ISO_DEFAULT_BASE;
	if (base > UINT64_MAX - (SVQ_ISO_IOVA_ALIGN - 1))
		return -EINVAL;
	page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		page = 4096;

	iso = calloc(1, sizeof(*iso));
	if (!iso)
		return -ENOMEM;
	iso->next_iova = round_up(base, SVQ_ISO_IOVA_ALIGN);
	iso->page = (uint64_t)page;
	iso->region_add = SVQ_OPTS_GET(opts, region_add, NULL);
	iso->region_del = SVQ_OPTS_GET(opts, region_del, NULL);
	iso->region_ctx = SVQ_OPTS_GET(opts, region_ctx, NULL);
	iso->log = SVQ_OPTS_GET(opts, log, NULL);
	iso->log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	name = SVQ_OPTS_GET(opts, name, NULL);
	snprintf(iso->name, sizeof(iso->name), "%s", name ? name : "svqiso");

	mo.log = iso->log;
	mo.log_ctx = iso->log_ctx;
	/* Calloc'd once at the cap; untouched slots cost no memory. */
	err = svqiso_mem_new(&mo, &iso->mem);
	if (err) {
		free(iso);
		return err;
	}
	{
		pthread_mutexattr_t a;

		/* Recursive: a callback may read the regions (to send a whole
		 * SET_MEM_TABLE) on the thread that holds the lock. */
		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&iso->lock, &a);
		pthread_mutexattr_destroy(&a);
	}
	*out = iso;
	return 0;
}

/* Index of the region based exactly at @iova, or -1. */
static int find_base(const struct svqiso_iso *iso, uint64_t iova,
		     struct svqiso_mem_region *m)
{
	unsigned int lo = 0, hi = svqiso_mem_nr_regions(iso->mem);

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		svqiso_mem_get_region(iso->mem, mid, m);
		if (m->gpa == iova)
			return (int)mid;
		if (m->gpa < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void region_drop(struct svqiso_iso *iso, const struct svqiso_mem_region *m)
{
	struct svqiso_region r;

	to_region(m, &r);
	/* The backend must stop using it while it is still mapped here. */
	if (iso->region_del)
		iso->region_del(iso->region_ctx, &r);
	svqiso_mem_remove_region(iso->mem, m->gpa);
	munmap(m->hva, m->size);
	close(m->fd);
}

void svqiso_iso_free(struct svqiso_iso *iso)
{
	struct svqiso_mem_region m;
	unsigned int n;

	if (!iso)
		return;
	/* Newest first: the reverse of the order they were announced in. */
	while ((n = svqiso_mem_nr_regions(iso->mem))) {
		svqiso_mem_get_region(iso->mem, n - 1, &m);
		region_drop(iso, &m);
	}
	svqiso_mem_free(iso->mem);
	pthread_mutex_destroy(&iso->lock);
	free(iso);
}

static int region_new(struct svqiso_iso *iso, uint64_t size,
		      struct svqiso_region *out)
{
	struct svqiso_mem_region m;
	struct svqiso_region r;
	char name[NAME_MAX_PREFIX + 32];
	uint64_t iova, span;
	const char *what;
	void *p;
	int fd, err;

	size = round_up(size, iso->page);
	span = round_up(size, SVQ_ISO_IOVA_ALIGN);
	iova = iso->next_iova;
	if (span > UINT64_MAX - iova) {
		svq_log(iso->log, iso->log_ctx, SVQISO_LOG_WARN,
			"iso: IOVA space exhausted at 0x%" PRIx64, iova);
		return -ENOSPC;
	}

	snprintf(name, sizeof(name), "%s-%" PRIx64, iso->name, iova);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		err = -errno;
		what = "memfd_create";
		goto fail;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		err = -errno;
		what = "ftruncate";
		goto fail_close;
	}
	/* The backend gets this fd and is not trusted: had it shrunk the file,
	 * our next access to the mapping would raise SIGBUS. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		what = "sealing";
		goto fail_close;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		what = "mmap";
		goto fail_close;
	}

	m = (struct svqiso_mem_region){
		.gpa = iova, .size = size, .hva = p, .fd = fd, .fd_offset = 0,
	};
	err = svqiso_mem_add_region(iso->mem, &m);
	if (err) {
		what = "region table";
		goto fail_unmap;
	}
	to_region(&m, &r);
	/* From here the backend may have seen this IOVA: never hand it out
	 * again, even if the add is refused. */
	iso->next_iova = iova + span;
	if (iso->region_add) {
		err = iso->region_add(iso->region_ctx, &r);
		if (err < 0) {
			svqiso_mem_remove_region(iso->mem, iova);
			what = "region_add";
			goto fail_unmap;
		}
	}
	*out = r;
	return 0;

fail_unmap:
	munmap(p, size);
fail_close:
	close(fd);
fail:
	svq_log(iso->log, iso->log_ctx, SVQISO_LOG_WARN,
		"iso: region of %" PRIu64 " bytes at 0x%" PRIx64 ": %s failed: %d",
		size, iova, what, err);
	return err;
}

int svqiso_iso_region_new(struct svqiso_iso *iso, uint64_t size,
			  struct svqiso_region *out)
{
	int err;

	if (!iso || !out || !size || size > SVQ_ISO_MAX_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&iso->lock);
	err = region_new(iso, size, out);
	pthread_mutex_unlock(&iso->lock);
	return err;
}

int svqiso_iso_region_free(struct svqiso_iso *iso, uint64_t iova)
{
	struct svqiso_mem_region m;
	int err = 0;

	if (!iso)
		return -EINVAL;
	pthread_mutex_lock(&iso->lock);
	if (find_base(iso, iova, &m) < 0)
		err = -ENOENT;
	else
		region_drop(iso, &m);
	pthread_mutex_unlock(&iso->lock);
	return err;
}

/* The iso's lock for a reader: @iso is const to its callers. */
static pthread_mutex_t *lock_of(const struct svqiso_iso *iso)
{
	return (pthread_mutex_t *)&iso->lock;
}

unsigned int svqiso_iso_nr_regions(const struct svqiso_iso *iso)
{
	unsigned int n;

	if (!iso)
		return 0;
	pthread_mutex_lock(lock_of(iso));
	n = svqiso_mem_nr_regions(iso->mem);
	pthread_mutex_unlock(lock_of(iso));
	return n;
}

int svqiso_iso_get_region(const struct svqiso_iso *iso, unsigned int i,
			  struct svqiso_region *out)
{
	struct svqiso_mem_region m;
	int err;

	if (!iso || !out)
		return -EINVAL;
	pthread_mutex_lock(lock_of(iso));
	err = svqiso_mem_get_region(iso->mem, i, &m);
	pthread_mutex_unlock(lock_of(iso));
	if (err)
		return err;
	to_region(&m, out);
	return 0;
}

const struct svqiso_mem *svqiso_iso_mem(const struct svqiso_iso *iso)
{
	return iso ? iso->mem : NULL;
}
