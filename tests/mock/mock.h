/* SPDX-License-Identifier: MIT */
/*
 * Mock guest for ring tests: guest memory and a guest driver, written without
 * any of the library's driver-role code so the two cannot share a mistake.
 *
 *  - Memory: one malloc'd arena served through struct svqiso_mem_ops as one or
 *    more regions at non-zero guest-physical addresses. Regions may leave holes
 *    between them (unmapped addresses) or be adjacent in GPA; consecutive
 *    regions are never adjacent in host memory, so a buffer crossing a region
 *    boundary must come back as two segments. An optional huge region is a
 *    PROT_NONE reservation: it translates like RAM but faults on any access,
 *    for length tests that must never touch buffer bytes.
 *  - Ring: split or packed, laid out at chosen GPAs for any num, written
 *    little-endian with release stores where a real driver makes things
 *    visible (split avail->idx, packed head flags).
 *
 * Split: a chain uses consecutive descriptors from a cursor (head, head + 1,
 * ... mod num); its id is the head index. Packed: a chain uses consecutive
 * ring slots from the driver's position, flipping the avail wrap counter past
 * the end; every descriptor carries the buffer id, and the head's flags are
 * stored last.
 *
 * Test code only: allocation failures and misuse abort.
 */
#ifndef SVQ_TESTS_MOCK_H
#define SVQ_TESTS_MOCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "vring.h"

#define MOCK_MAX_REGIONS 16

/* Default memory (mock_new_default()). */
#define MOCK_R0_GPA	0x10000000ull	/* 256 KiB: rings, tables, buffers */
#define MOCK_R0_SIZE	0x40000ull
#define MOCK_HOLE_GPA	0x18000000ull	/* in the hole between R0 and R1 */
#define MOCK_R1_GPA	0x20000000ull	/* R1, R2, R3: 4 KiB each, adjacent */
#define MOCK_RX_SIZE	0x1000ull
#define MOCK_END_GPA	0x20003000ull	/* first address past R3 */
#define MOCK_HUGE_GPA	0x100000000ull	/* mock_add_huge() default */
#define MOCK_HUGE_SIZE	0x100000000ull

struct mock_region_cfg {
	uint64_t gpa;
	uint64_t size;
};

struct mock_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

/* One buffer of a chain. */
struct mock_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;	/* device-writable */
};

/* Raw descriptor fields; split uses next, packed uses id. Host byte order. */
struct mock_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
	uint16_t id;
};

struct mock {
	/* memory */
	uint8_t *arena;
	size_t arena_size;
	uint8_t *snap;			/* mock_snapshot() copy */
	struct mock_region reg[MOCK_MAX_REGIONS];
	unsigned int nr_regions;
	struct mock_region huge;	/* size 0: none */
	struct svqiso_mem_ops ops;
	unsigned long translate_calls;
	/* Called at the start of every translate: lets a test change guest
	 * memory in the middle of a walk, as a racing driver would. */
	void (*on_translate)(struct mock *m, uint64_t addr, void *arg);
	void *on_translate_arg;
	uint64_t alloc_top;		/* mock_alloc() works down from R0's end */

	/* ring */
	uint8_t layout;
	uint16_t num;
	uint64_t desc_gpa, driver_gpa, device_gpa;
	void *desc;			/* struct svq_split_desc / svq_packed_desc [num] */
	void *driver;			/* split avail / packed driver event */
	void *device;			/* split used / packed device event */
	uint16_t *ndescs;		/* [num]: ring slots of the chain with that id */

	/* driver state */
	bool hold;			/* split: mock_publish() publishes, not add */
	uint16_t avail_idx;		/* split: private avail idx */
	uint16_t next_desc;		/* split: descriptor cursor */
	uint16_t next_avail;		/* packed: driver position */
	bool avail_wrap;		/* packed: driver wrap counter */
	uint16_t next_id;		/* packed: next buffer id */
	uint16_t last_used;		/* split: used idx; packed: used slot */
	bool used_wrap;			/* packed */
};

/* ---- memory ---- */

/* Regions in ascending, non-overlapping GPA order. */
struct mock *mock_new(const struct mock_region_cfg *r, unsigned int n);
/* R0 | hole | R1 R2 R3 (adjacent) | unmapped: see MOCK_*_GPA. */
struct mock *mock_new_default(void);
void mock_free(struct mock *m);

/*
 * Add a huge region at @gpa that faults on access (a PROT_NONE reservation).
 * Return: 0, or -errno if the reservation fails (tests then skip).
 */
int mock_add_huge(struct mock *m, uint64_t gpa, uint64_t size);

/* The translate op; @ctx is the mock. */
void *mock_translate(void *ctx, uint64_t addr, uint64_t *len);
/* Host address of [@gpa, @gpa + @len) within one region, or NULL. */
void *mock_hva(struct mock *m, uint64_t gpa, uint64_t len);
/* Allocate @len bytes aligned to @align in R0 (top down); never fails. */
uint64_t mock_alloc(struct mock *m, uint64_t len, uint64_t align);

/* Copy the whole arena; mock_unchanged() compares against the copy. */
void mock_snapshot(struct mock *m);
bool mock_unchanged(const struct mock *m);
/* GPA of the first byte changed since the snapshot, or 0 (diagnostics). */
uint64_t mock_first_change(const struct mock *m);

/* ---- ring ---- */

/* Lay out a zeroed ring at the start of R0. */
void mock_ring_init(struct mock *m, uint8_t layout, uint16_t num);
/* Lay out a zeroed ring at chosen GPAs; each area must sit in one region. */
void mock_ring_init_at(struct mock *m, uint8_t layout, uint16_t num,
		       uint64_t desc, uint64_t driver, uint64_t device);
/* Device-role config for this ring: INDIRECT | EVENT_IDX, mem = the mock. */
void mock_dev_cfg(const struct mock *m, struct svq_dev_cfg *cfg);

/*
 * Make a chain of direct descriptors available.
 * Return: its id (split: head index; packed: buffer id), or -1 if @n is 0 or
 * more than num.
 */
int mock_add_chain(struct mock *m, const struct mock_seg *seg, unsigned int n);
/* Same with a chosen id: split: the head descriptor; packed: the buffer id. */
int mock_add_chain_id(struct mock *m, const struct mock_seg *seg,
		      unsigned int n, uint16_t id);
/*
 * Write @n segments as an indirect table (mock_alloc()'d) and make one ring
 * descriptor pointing at it available. @table (may be NULL) receives its GPA.
 * Return: as mock_add_chain().
 */
int mock_add_indirect_chain(struct mock *m, const struct mock_seg *seg,
			    unsigned int n, uint64_t *table);
/* Split: release-store avail->idx (add does it unless m->hold). Packed: no-op. */
void mock_publish(struct mock *m);

/* Raw descriptor access by ring slot; packed flags are written as given. */
void mock_desc_read(struct mock *m, uint16_t slot, struct mock_desc *d);
void mock_desc_write(struct mock *m, uint16_t slot, const struct mock_desc *d);
/* Raw access to entry @i of an indirect table at @table (ring's format). */
void mock_table_read(struct mock *m, uint64_t table, unsigned int i,
		     struct mock_desc *d);
void mock_table_write(struct mock *m, uint64_t table, unsigned int i,
		      const struct mock_desc *d);

/* Split: set desc[@slot].next and its NEXT flag. */
void mock_corrupt_next(struct mock *m, uint16_t slot, uint16_t next);
/* Split: release-store avail->idx = @idx (private idx follows). */
void mock_set_avail_idx(struct mock *m, uint16_t idx);
/* Split: avail->ring[@pos % num] = @head. */
void mock_set_avail_ring(struct mock *m, uint16_t pos, uint16_t head);
/* Packed: desc[@slot].id = @id. */
void mock_set_id(struct mock *m, uint16_t slot, uint16_t id);
/* Packed: AVAIL/USED bits meaning "available in round @wrap". */
uint16_t mock_avail_bits(bool wrap);
/* Packed: replace desc[@slot]'s AVAIL/USED bits. */
void mock_set_wrap_bits(struct mock *m, uint16_t slot, bool avail, bool used);
/* Packed: invert both AVAIL and USED of desc[@slot]. */
void mock_flip_wrap(struct mock *m, uint16_t slot);

/*
 * Read the next used entry the device published.
 * Return: 1 (filled), 0 (none yet).
 */
int mock_get_used(struct mock *m, uint16_t *id, uint32_t *len);
/* Next used entry's len if it is for @id; -1 if for another id; -2 if none. */
int64_t mock_used_len(struct mock *m, uint16_t id);

/* ---- notification suppression ---- */

/* Split. */
void mock_set_avail_flags(struct mock *m, uint16_t flags);
void mock_set_used_event(struct mock *m, uint16_t idx);
uint16_t mock_used_flags(struct mock *m);
uint16_t mock_avail_event(struct mock *m);
uint16_t mock_used_idx(struct mock *m);
/* Packed. */
void mock_set_driver_event(struct mock *m, uint16_t off, bool wrap,
			   uint16_t flags);
void mock_device_event(struct mock *m, uint16_t *off, bool *wrap,
		       uint16_t *flags);

#endif /* SVQ_TESTS_MOCK_H */
