/* SPDX-License-Identifier: MIT */
/* Mock guest: memory served through svqiso_mem_ops and a guest driver. */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "mock.h"

#define GUARD 4096	/* arena gap between regions: no host contiguity */

static void die(const char *what)
{
	fprintf(stderr, "mock: %s\n", what);
	abort();
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

struct mock *mock_new(const struct mock_region_cfg *r, unsigned int n)
{
	struct mock *m = calloc(1, sizeof(*m));
	size_t off = 0;
	unsigned int i;

	if (!m || n == 0 || n > MOCK_MAX_REGIONS)
		die("mock_new");
	for (i = 0; i < n; i++) {
		if (r[i].size == 0 || (i && r[i].gpa < r[i - 1].gpa + r[i - 1].size))
			die("regions must be ascending and non-overlapping");
		off += align_up(r[i].size, GUARD) + GUARD;
	}
	m->arena_size = off;
	m->arena = aligned_alloc(GUARD, off);
	if (!m->arena)
		die("arena");
	memset(m->arena, 0, off);
	for (off = 0, i = 0; i < n; i++) {
		m->reg[i].gpa = r[i].gpa;
		m->reg[i].size = r[i].size;
		m->reg[i].hva = m->arena + off;
		off += align_up(r[i].size, GUARD) + GUARD;
	}
	m->nr_regions = n;
	m->ops.sz = sizeof(m->ops);
	m->ops.translate = mock_translate;
	m->alloc_top = r[0].gpa + r[0].size;
	return m;
}

struct mock *mock_new_default(void)
{
	static const struct mock_region_cfg r[] = {
		{ MOCK_R0_GPA, MOCK_R0_SIZE },
		{ MOCK_R1_GPA, MOCK_RX_SIZE },
		{ MOCK_R1_GPA + MOCK_RX_SIZE, MOCK_RX_SIZE },
		{ MOCK_R1_GPA + 2 * MOCK_RX_SIZE, MOCK_RX_SIZE },
	};

	return mock_new(r, 4);
}

void mock_free(struct mock *m)
{
	if (!m)
		return;
	if (m->huge.size)
		munmap(m->huge.hva, m->huge.size);
	free(m->ndescs);
	free(m->snap);
	free(m->arena);
	free(m);
}

int mock_add_huge(struct mock *m, uint64_t gpa, uint64_t size)
{
	void *p;

	if (m->huge.size)
		die("one huge region only");
	p = mmap(NULL, size, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->huge.gpa = gpa;
	m->huge.size = size;
	m->huge.hva = p;
	return 0;
}

static const struct mock_region *find(const struct mock *m, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < m->nr_regions; i++)
		if (gpa >= m->reg[i].gpa && gpa - m->reg[i].gpa < m->reg[i].size)
			return &m->reg[i];
	if (m->huge.size && gpa >= m->huge.gpa &&
	    gpa - m->huge.gpa < m->huge.size)
		return &m->huge;
	return NULL;
}

void *mock_translate(void *ctx, uint64_t addr, uint64_t *len)
{
	struct mock *m = ctx;
	const struct mock_region *r;
	uint64_t left;

	m->translate_calls++;
	if (m->on_translate)
		m->on_translate(m, addr, m->on_translate_arg);
	r = find(m, addr);
	if (!r || *len == 0)
		return NULL;
	left = r->size - (addr - r->gpa);
	if (*len > left)
		*len = left;
	return r->hva + (addr - r->gpa);
}

void *mock_hva(struct mock *m, uint64_t gpa, uint64_t len)
{
	const struct mock_region *r = find(m, gpa);

	if (!r || r == &m->huge || len > r->size - (gpa - r->gpa))
		return NULL;
	return r->hva + (gpa - r->gpa);
}

uint64_t mock_alloc(struct mock *m, uint64_t len, uint64_t align)
{
	uint64_t a = (m->alloc_top - len) & ~(align - 1);

	if (len > m->alloc_top - m->reg[0].gpa || a < m->reg[0].gpa)
		die("mock_alloc: R0 is full");
	m->alloc_top = a;
	return a;
}

void mock_snapshot(struct mock *m)
{
	if (!m->snap)
		m->snap = malloc(m->arena_size);
	if (!m->snap)
		die("snapshot");
	memcpy(m->snap, m->arena, m->arena_size);
}

bool mock_unchanged(const struct mock *m)
{
	if (!m->snap)
		die("mock_unchanged without mock_snapshot");
	return memcmp(m->snap, m->arena, m->arena_size) == 0;
}

uint64_t mock_first_change(const struct mock *m)
{
	size_t i;
	unsigned int r;

	for (i = 0; i < m->arena_size; i++)
		if (m->snap[i] != m->arena[i])
			break;
	if (i == m->arena_size)
		return 0;
	for (r = 0; r < m->nr_regions; r++) {
		size_t off = m->reg[r].hva - m->arena;

		if (i >= off && i - off < m->reg[r].size)
			return m->reg[r].gpa + (i - off);
	}
	return UINT64_MAX;	/* a guard gap changed */
}

/* ---- ring layout ---- */

static uint64_t driver_size(uint8_t layout, uint16_t num)
{
	return layout == SVQISO_LAYOUT_SPLIT ? 4 + 2 * (uint64_t)num + 2 : 4;
}

static uint64_t device_size(uint8_t layout, uint16_t num)
{
	return layout == SVQISO_LAYOUT_SPLIT ? 4 + 8 * (uint64_t)num + 2 : 4;
}

void mock_ring_init_at(struct mock *m, uint8_t layout, uint16_t num,
		       uint64_t desc, uint64_t driver, uint64_t device)
{
	uint64_t dsz = 16 * (uint64_t)num;
	uint64_t drsz = driver_size(layout, num);
	uint64_t dvsz = device_size(layout, num);

	if (layout >= SVQISO_NR_LAYOUTS || num == 0 || num > SVQ_RING_MAX)
		die("mock_ring_init: layout or num");
	m->layout = layout;
	m->num = num;
	m->desc_gpa = desc;
	m->driver_gpa = driver;
	m->device_gpa = device;
	m->desc = mock_hva(m, desc, dsz);
	m->driver = mock_hva(m, driver, drsz);
	m->device = mock_hva(m, device, dvsz);
	if (!m->desc || !m->driver || !m->device)
		die("mock_ring_init: an area is not inside one region");
	memset(m->desc, 0, dsz);
	memset(m->driver, 0, drsz);
	memset(m->device, 0, dvsz);
	free(m->ndescs);
	m->ndescs = calloc(num, sizeof(*m->ndescs));
	if (!m->ndescs)
		die("ndescs");
	m->avail_idx = 0;
	m->next_desc = 0;
	m->next_avail = 0;
	m->avail_wrap = true;
	m->next_id = 0;
	m->last_used = 0;
	m->used_wrap = true;
}

void mock_ring_init(struct mock *m, uint8_t layout, uint16_t num)
{
	uint64_t desc = m->reg[0].gpa;
	uint64_t driver = align_up(desc + 16 * (uint64_t)num, 4);
	uint64_t device = align_up(driver + driver_size(layout, num), 4);

	if (device + device_size(layout, num) > m->alloc_top)
		die("mock_ring_init: ring does not fit in R0");
	mock_ring_init_at(m, layout, num, desc, driver, device);
}

void mock_dev_cfg(const struct mock *m, struct svq_dev_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->layout = m->layout;
	cfg->num = m->num;
	cfg->flags = SVQ_RING_F_INDIRECT | SVQ_RING_F_EVENT_IDX;
	cfg->desc = m->desc_gpa;
	cfg->driver = m->driver_gpa;
	cfg->device = m->device_gpa;
	cfg->mem = &m->ops;
	cfg->mem_ctx = (void *)m;
	cfg->name = "mock";
}

/* ---- raw descriptors ---- */

static struct svq_split_desc *split_desc(struct mock *m, uint16_t slot)
{
	if (m->layout != SVQISO_LAYOUT_SPLIT || slot >= m->num)
		die("split descriptor slot");
	return (struct svq_split_desc *)m->desc + slot;
}

static struct svq_packed_desc *packed_desc(struct mock *m, uint16_t slot)
{
	if (m->layout != SVQISO_LAYOUT_PACKED || slot >= m->num)
		die("packed descriptor slot");
	return (struct svq_packed_desc *)m->desc + slot;
}

static void read_desc(uint8_t layout, const void *p, struct mock_desc *d)
{
	memset(d, 0, sizeof(*d));
	if (layout == SVQISO_LAYOUT_SPLIT) {
		const struct svq_split_desc *s = p;

		d->addr = le64toh(s->addr);
		d->len = le32toh(s->len);
		d->flags = le16toh(s->flags);
		d->next = le16toh(s->next);
	} else {
		const struct svq_packed_desc *s = p;

		d->addr = le64toh(s->addr);
		d->len = le32toh(s->len);
		d->id = le16toh(s->id);
		d->flags = le16toh(__atomic_load_n(&s->flags, __ATOMIC_ACQUIRE));
	}
}

/* Packed: flags go last, with release, as a driver makes a head available. */
static void write_desc(uint8_t layout, void *p, const struct mock_desc *d)
{
	if (layout == SVQISO_LAYOUT_SPLIT) {
		struct svq_split_desc *s = p;

		s->addr = htole64(d->addr);
		s->len = htole32(d->len);
		s->flags = htole16(d->flags);
		s->next = htole16(d->next);
	} else {
		struct svq_packed_desc *s = p;

		s->addr = htole64(d->addr);
		s->len = htole32(d->len);
		s->id = htole16(d->id);
		__atomic_store_n(&s->flags, htole16(d->flags), __ATOMIC_RELEASE);
	}
}

void mock_desc_read(struct mock *m, uint16_t slot, struct mock_desc *d)
{
	read_desc(m->layout, m->layout == SVQISO_LAYOUT_SPLIT ?
		  (void *)split_desc(m, slot) : (void *)packed_desc(m, slot), d);
}

void mock_desc_write(struct mock *m, uint16_t slot, const struct mock_desc *d)
{
	write_desc(m->layout, m->layout == SVQISO_LAYOUT_SPLIT ?
		   (void *)split_desc(m, slot) : (void *)packed_desc(m, slot), d);
}

static void *table_entry(struct mock *m, uint64_t table, unsigned int i)
{
	void *p = mock_hva(m, table + 16 * (uint64_t)i, 16);

	if (!p)
		die("indirect table entry outside mock memory");
	return p;
}

void mock_table_read(struct mock *m, uint64_t table, unsigned int i,
		     struct mock_desc *d)
{
	read_desc(m->layout, table_entry(m, table, i), d);
}

void mock_table_write(struct mock *m, uint64_t table, unsigned int i,
		      const struct mock_desc *d)
{
	write_desc(m->layout, table_entry(m, table, i), d);
}

/* ---- the driver ---- */

static struct svq_split_avail *avail(struct mock *m)
{
	return m->driver;
}

static struct svq_split_used *used(struct mock *m)
{
	return m->device;
}

void mock_publish(struct mock *m)
{
	if (m->layout != SVQISO_LAYOUT_SPLIT)
		return;
	/* Descriptors and ring entries before idx: pairs with the device's
	 * acquire load of avail->idx. */
	__atomic_store_n(&avail(m)->idx, htole16(m->avail_idx), __ATOMIC_RELEASE);
}

uint16_t mock_avail_bits(bool wrap)
{
	return wrap ? SVQ_DESC_F_AVAIL : SVQ_DESC_F_USED;
}

/* Make @n descriptors (flags: WRITE/INDIRECT only) available as one chain. */
static int add_descs(struct mock *m, struct mock_desc *d, unsigned int n,
		     uint16_t id)
{
	uint16_t head_slot;
	unsigned int i;

	if (n == 0 || n > m->num)
		return -1;
	if (m->layout == SVQISO_LAYOUT_SPLIT) {
		uint16_t head = id;

		if (head >= m->num)
			die("split head >= num");
		for (i = 0; i < n; i++) {
			uint16_t slot = (head + i) % m->num;

			d[i].next = (slot + 1) % m->num;
			if (i + 1 < n)
				d[i].flags |= SVQ_DESC_F_NEXT;
			mock_desc_write(m, slot, &d[i]);
		}
		m->next_desc = (head + n) % m->num;
		avail(m)->ring[m->avail_idx % m->num] = htole16(head);
		m->avail_idx++;
		m->ndescs[head] = n;
		if (!m->hold)
			mock_publish(m);
		return head;
	}

	/* Packed: members first, the head's flags last. */
	head_slot = m->next_avail;
	for (i = 0; i < n; i++) {
		bool wrap = m->avail_wrap;
		uint16_t slot = m->next_avail;

		d[i].id = id;
		if (i + 1 < n)
			d[i].flags |= SVQ_DESC_F_NEXT;
		d[i].flags |= mock_avail_bits(wrap);
		if (++m->next_avail == m->num) {
			m->next_avail = 0;
			m->avail_wrap = !m->avail_wrap;
		}
		if (i == 0) {
			uint16_t f = d[0].flags;

			/* Leave the head unavailable until the rest is written. */
			d[0].flags = (d[0].flags & ~(SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED)) |
				     mock_avail_bits(!wrap);
			mock_desc_write(m, slot, &d[0]);
			d[0].flags = f;
		} else {
			mock_desc_write(m, slot, &d[i]);
		}
	}
	mock_desc_write(m, head_slot, &d[0]);
	if (id < m->num)
		m->ndescs[id] = n;
	return id;
}

static int add_chain(struct mock *m, const struct mock_seg *seg, unsigned int n,
		     uint16_t id)
{
	struct mock_desc d[n ? n : 1];
	unsigned int i;

	for (i = 0; i < n; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		d[i].addr = seg[i].gpa;
		d[i].len = seg[i].len;
		d[i].flags = seg[i].write ? SVQ_DESC_F_WRITE : 0;
	}
	return add_descs(m, d, n, id);
}

static uint16_t next_id(struct mock *m)
{
	if (m->layout == SVQISO_LAYOUT_SPLIT)
		return m->next_desc;
	return m->next_id++ % m->num;
}

int mock_add_chain(struct mock *m, const struct mock_seg *seg, unsigned int n)
{
	if (n == 0 || n > m->num)
		return -1;
	return add_chain(m, seg, n, next_id(m));
}

int mock_add_chain_id(struct mock *m, const struct mock_seg *seg,
		      unsigned int n, uint16_t id)
{
	return add_chain(m, seg, n, id);
}

int mock_add_indirect_chain(struct mock *m, const struct mock_seg *seg,
			    unsigned int n, uint64_t *table)
{
	struct mock_desc d = { 0 };
	uint64_t t;
	unsigned int i;

	if (n == 0)
		return -1;
	t = mock_alloc(m, 16 * (uint64_t)n, 16);
	for (i = 0; i < n; i++) {
		struct mock_desc e = {
			.addr = seg[i].gpa,
			.len = seg[i].len,
			.flags = seg[i].write ? SVQ_DESC_F_WRITE : 0,
		};

		/* Split tables are linked by next; packed ones are in order. */
		if (m->layout == SVQISO_LAYOUT_SPLIT && i + 1 < n) {
			e.flags |= SVQ_DESC_F_NEXT;
			e.next = i + 1;
		}
		mock_table_write(m, t, i, &e);
	}
	if (table)
		*table = t;
	d.addr = t;
	d.len = 16 * n;
	d.flags = SVQ_DESC_F_INDIRECT;
	return add_descs(m, &d, 1, next_id(m));
}

void mock_corrupt_next(struct mock *m, uint16_t slot, uint16_t next)
{
	struct svq_split_desc *d = split_desc(m, slot);

	d->next = htole16(next);
	d->flags |= htole16(SVQ_DESC_F_NEXT);
}

void mock_set_avail_idx(struct mock *m, uint16_t idx)
{
	if (m->layout != SVQISO_LAYOUT_SPLIT)
		die("mock_set_avail_idx on a packed ring");
	m->avail_idx = idx;
	mock_publish(m);
}

void mock_set_avail_ring(struct mock *m, uint16_t pos, uint16_t head)
{
	if (m->layout != SVQISO_LAYOUT_SPLIT)
		die("mock_set_avail_ring on a packed ring");
	avail(m)->ring[pos % m->num] = htole16(head);
}

void mock_set_id(struct mock *m, uint16_t slot, uint16_t id)
{
	packed_desc(m, slot)->id = htole16(id);
}

void mock_set_wrap_bits(struct mock *m, uint16_t slot, bool a, bool u)
{
	struct mock_desc d;

	mock_desc_read(m, slot, &d);
	d.flags &= ~(SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	d.flags |= (a ? SVQ_DESC_F_AVAIL : 0) | (u ? SVQ_DESC_F_USED : 0);
	mock_desc_write(m, slot, &d);
}

void mock_flip_wrap(struct mock *m, uint16_t slot)
{
	struct mock_desc d;

	mock_desc_read(m, slot, &d);
	d.flags ^= SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED;
	mock_desc_write(m, slot, &d);
}

/* ---- used entries ---- */

int mock_get_used(struct mock *m, uint16_t *id, uint32_t *len)
{
	if (m->layout == SVQISO_LAYOUT_SPLIT) {
		struct svq_split_used *u = used(m);
		const struct svq_used_elem *e;

		/* Pairs with the device's release store of used->idx. */
		if (le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE)) ==
		    m->last_used)
			return 0;
		e = &u->ring[m->last_used % m->num];
		*id = (uint16_t)le32toh(e->id);
		*len = le32toh(e->len);
		m->last_used++;
		return 1;
	} else {
		struct mock_desc d;
		bool a, u;
		uint16_t step;

		mock_desc_read(m, m->last_used, &d);	/* acquire on flags */
		a = d.flags & SVQ_DESC_F_AVAIL;
		u = d.flags & SVQ_DESC_F_USED;
		if (a != m->used_wrap || u != m->used_wrap)
			return 0;
		*id = d.id;
		*len = d.len;
		step = d.id < m->num && m->ndescs[d.id] ? m->ndescs[d.id] : 1;
		m->last_used += step;
		if (m->last_used >= m->num) {
			m->last_used -= m->num;
			m->used_wrap = !m->used_wrap;
		}
		return 1;
	}
}

int64_t mock_used_len(struct mock *m, uint16_t id)
{
	uint16_t got;
	uint32_t len;

	if (!mock_get_used(m, &got, &len))
		return -2;
	return got == id ? (int64_t)len : -1;
}

/* ---- notification suppression ---- */

void mock_set_avail_flags(struct mock *m, uint16_t flags)
{
	__atomic_store_n(&avail(m)->flags, htole16(flags), __ATOMIC_RELEASE);
}

void mock_set_used_event(struct mock *m, uint16_t idx)
{
	__atomic_store_n(&avail(m)->ring[m->num], htole16(idx), __ATOMIC_RELEASE);
}

uint16_t mock_used_flags(struct mock *m)
{
	return le16toh(__atomic_load_n(&used(m)->flags, __ATOMIC_ACQUIRE));
}

uint16_t mock_avail_event(struct mock *m)
{
	uint16_t *p = (uint16_t *)&used(m)->ring[m->num];

	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

uint16_t mock_used_idx(struct mock *m)
{
	return le16toh(__atomic_load_n(&used(m)->idx, __ATOMIC_ACQUIRE));
}

void mock_set_driver_event(struct mock *m, uint16_t off, bool wrap,
			   uint16_t flags)
{
	struct svq_packed_event *e = m->driver;

	e->off_wrap = htole16((off & 0x7fff) | (wrap ? 0x8000 : 0));
	__atomic_store_n(&e->flags, htole16(flags), __ATOMIC_RELEASE);
}

void mock_device_event(struct mock *m, uint16_t *off, bool *wrap,
		       uint16_t *flags)
{
	struct svq_packed_event *e = m->device;
	uint16_t ow;

	*flags = le16toh(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE));
	ow = le16toh(e->off_wrap);
	*off = ow & 0x7fff;
	*wrap = ow >> 15;
}
