/* SPDX-License-Identifier: MIT */
/*
 * Device-role validation: every way a hostile driver can malform a ring is fed
 * through the mock guest, and each must break the ring with its own rule,
 * exactly one log line, no guest memory written and no state consumed.
 *
 * Ring tests run once per layout (_i is the layout). Where a rule exists in
 * one layout only, the other layout's analogue is tested from the same body:
 *
 *   case                         split               packed
 *   avail idx ahead > num        AVAIL_IDX           - (no index; split only)
 *   head / buffer id >= num      HEAD_RANGE          ID_RANGE
 *   next >= num                  NEXT_RANGE          - (no next; split only)
 *   chain longer than the ring   CHAIN_LOOP (loop)   CHAIN_LOOP (NEXT > num)
 *   member out of its lap        - (packed only)     WRAP
 *   id already in flight         INFLIGHT            INFLIGHT
 *
 * The rest (indirect, lengths, addresses, segments) are layout-independent.
 *
 * The "map" cases run the single-descriptor and address tests again with the
 * mock's memory served through the built-in svqiso_mem, whose cached region
 * the rings translate through inline: that short path must break a ring
 * exactly as the general one does.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vring.h"
#include "mock.h"

#define MAX_SEG		64
#define BUF(n)		(MOCK_R0_GPA + 0x20000 + 0x100 * (uint64_t)(n))
#define R0_END		(MOCK_R0_GPA + MOCK_R0_SIZE)
#define R2_GPA		(MOCK_R1_GPA + MOCK_RX_SIZE)
#define R3_GPA		(MOCK_R1_GPA + 2 * MOCK_RX_SIZE)

/* One ring under test; checked teardown frees it after each test. */
static struct fx {
	struct mock *m;
	struct svq_dev_cfg cfg;
	struct svq_dev vq;
	bool started;
	struct svq_seg seg[MAX_SEG];
	struct svq_elem e;
	unsigned int log_lines;
	char log_last[256];
	struct svqiso_mem *map;		/* the built-in map, with use_map */
} F;

/* Serve guest memory through the built-in map (set by the "map" fixture). */
static bool use_map;

static void log_cb(void *ctx, int level, const char *msg)
{
	struct fx *f = ctx;

	(void)level;
	f->log_lines++;
	snprintf(f->log_last, sizeof(f->log_last), "%s", msg);
}

/* Split rings need a power of two; packed ones get an odd size on purpose. */
static uint16_t ring_num(int layout)
{
	return layout == SVQISO_LAYOUT_SPLIT ? 8 : 7;
}

/* The mock's regions, as they are, in a svqiso_mem the ring translates with. */
static void serve_through_map(void)
{
	unsigned int i;

	ck_assert_int_eq(svqiso_mem_new(NULL, &F.map), 0);
	for (i = 0; i < F.m->nr_regions; i++) {
		struct svqiso_mem_region r = {
			.gpa = F.m->reg[i].gpa, .size = F.m->reg[i].size,
			.hva = F.m->reg[i].hva, .fd = -1,
		};

		ck_assert_int_eq(svqiso_mem_add_region(F.map, &r), 0);
	}
	F.cfg.mem = svqiso_mem_ops();
	F.cfg.mem_ctx = F.map;
}

/* Lay out a ring; the caller may adjust F.cfg before fx_start(). */
static void fx_ring(int layout, uint16_t num)
{
	F.m = mock_new_default();
	mock_ring_init(F.m, layout, num);
	mock_dev_cfg(F.m, &F.cfg);
	F.cfg.log = log_cb;
	F.cfg.log_ctx = &F;
	F.e.seg = F.seg;
	F.e.max_seg = MAX_SEG;
	if (use_map)
		serve_through_map();
}

static void fx_start(void)
{
	ck_assert_int_eq(svq_dev_init(&F.vq, &F.cfg), 0);
	F.started = true;
	/* The case is about the inline path: make sure it is the one taken. */
	if (use_map)
		ck_assert_ptr_eq(F.vq.map, F.map);
}

static void fx_open(int layout, uint16_t num)
{
	fx_ring(layout, num);
	fx_start();
}

static void fx_teardown(void)
{
	if (F.started)
		svq_dev_fini(&F.vq);
	svqiso_mem_free(F.map);
	mock_free(F.m);
	memset(&F, 0, sizeof(F));
}

static void fx_setup(void)
{
	memset(&F, 0, sizeof(F));
	use_map = false;
}

static void fx_setup_map(void)
{
	fx_setup();
	use_map = true;
}

static void pop_ok(void)
{
	int r = svq_dev_pop(&F.vq, &F.e);

	ck_assert_msg(r == 1, "pop: %d (%s)", r, F.vq.rc.reason);
	ck_assert(!F.vq.rc.broken);
}

/*
 * The next pop must fail with @rule and have no other effect: errno, broken
 * state, one log line naming the rule, guest memory and base untouched, an
 * empty element, and -EIO from then on.
 */
static void expect_violation(enum svq_rule rule)
{
	uint32_t base = svq_dev_get_base(&F.vq);
	uint16_t inflight = F.vq.inflight;
	unsigned int lines = F.log_lines;
	int r;

	mock_snapshot(F.m);
	F.e.nseg = 99;
	r = svq_dev_pop(&F.vq, &F.e);
	ck_assert_msg(r == svq_rule_errno(rule),
		      "pop: %d, want %d (%s); reason \"%s\"", r,
		      svq_rule_errno(rule), svq_rule_name(rule), F.vq.rc.reason);
	ck_assert_int_lt(r, 0);
	ck_assert(F.vq.rc.broken);
	ck_assert_msg(F.vq.rc.rule == rule, "rule %s, want %s",
		      svq_rule_name(F.vq.rc.rule), svq_rule_name(rule));
	ck_assert_uint_eq(F.log_lines - lines, 1);
	ck_assert_msg(strstr(F.log_last, svq_rule_name(rule)),
		      "log line \"%s\" does not name %s", F.log_last,
		      svq_rule_name(rule));
	ck_assert_msg(mock_unchanged(F.m), "guest memory changed at 0x%llx",
		      (unsigned long long)mock_first_change(F.m));
	ck_assert_uint_eq(svq_dev_get_base(&F.vq), base);
	ck_assert_uint_eq(F.vq.inflight, inflight);
	ck_assert_uint_eq(F.e.nseg, 0);

	F.e.nseg = 99;
	ck_assert_int_eq(svq_dev_pop(&F.vq, &F.e), -EIO);
	ck_assert_uint_eq(F.e.nseg, 0);
	ck_assert_int_eq(svq_dev_push(&F.vq, 0, 0), -EIO);
	ck_assert_uint_eq(F.log_lines - lines, 1);
	ck_assert(mock_unchanged(F.m));
	ck_assert_uint_eq(svq_dev_get_base(&F.vq), base);
}

/* A ring holding one chain of @n segments must be rejected with @rule. */
static void bad_chain(int layout, const struct mock_seg *s, unsigned int n,
		      enum svq_rule rule)
{
	fx_open(layout, ring_num(layout));
	ck_assert_int_ge(mock_add_chain(F.m, s, n), 0);
	expect_violation(rule);
}

static void bad_indirect(int layout, const struct mock_seg *s, unsigned int n,
			 enum svq_rule rule)
{
	fx_open(layout, ring_num(layout));
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, n, NULL), 0);
	expect_violation(rule);
}

/* Pop, push and flush one valid chain so the ring is not at its start. */
static void cycle_one(void)
{
	struct mock_seg s = { BUF(0), 64, true };
	uint16_t id;
	uint32_t len;

	ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
	pop_ok();
	ck_assert_int_eq(svq_dev_push(&F.vq, F.e.id, 1), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_get_used(F.m, &id, &len), 1);
}

static bool need_huge(void)
{
	return mock_add_huge(F.m, MOCK_HUGE_GPA, MOCK_HUGE_SIZE) == 0;
}

/* ---- the rule table ---- */

/* Names must tell rules apart in a log; -EIO is reserved for "already broken". */
START_TEST(test_rule_names_errnos_distinct)
{
	int r, q;

	for (r = SVQ_RULE_NONE + 1; r < SVQ_NR_RULES; r++) {
		ck_assert_str_ne(svq_rule_name(r), "unknown");
		ck_assert_int_lt(svq_rule_errno(r), 0);
		ck_assert_int_ne(svq_rule_errno(r), -EIO);
		for (q = SVQ_RULE_NONE; q < r; q++)
			ck_assert_str_ne(svq_rule_name(r), svq_rule_name(q));
	}
	ck_assert_ptr_nonnull(svq_rule_name(SVQ_NR_RULES));
}
END_TEST

/* ---- index and id range ---- */

START_TEST(test_avail_idx_ahead_rejected)
{
	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	cycle_one();
	/* last_avail_idx is 1: 1 + 8 is the furthest a driver may go. */
	mock_set_avail_idx(F.m, 1 + 8 + 1);
	expect_violation(SVQ_RULE_AVAIL_IDX);
}
END_TEST

START_TEST(test_avail_idx_far_behind_rejected)
{
	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	cycle_one();
	/* Going backwards is "ahead by 65535". */
	mock_set_avail_idx(F.m, 0);
	expect_violation(SVQ_RULE_AVAIL_IDX);
}
END_TEST

START_TEST(test_head_out_of_range_rejected)
{
	struct mock_seg s = { BUF(0), 64, false };
	uint16_t num = ring_num(_i);

	fx_open(_i, num);
	cycle_one();
	if (_i == SVQISO_LAYOUT_SPLIT) {
		ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
		mock_set_avail_ring(F.m, 1, num);
		expect_violation(SVQ_RULE_HEAD_RANGE);
	} else {
		ck_assert_int_ge(mock_add_chain_id(F.m, &s, 1, num), 0);
		expect_violation(SVQ_RULE_ID_RANGE);
	}
}
END_TEST

START_TEST(test_head_max_u16_rejected)
{
	struct mock_seg s = { BUF(0), 64, false };

	fx_open(_i, ring_num(_i));
	if (_i == SVQISO_LAYOUT_SPLIT) {
		ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
		mock_set_avail_ring(F.m, 0, 0xffff);
		expect_violation(SVQ_RULE_HEAD_RANGE);
	} else {
		ck_assert_int_ge(mock_add_chain_id(F.m, &s, 1, 0xffff), 0);
		expect_violation(SVQ_RULE_ID_RANGE);
	}
}
END_TEST

/* Packed: the buffer id is the LAST descriptor's; a bad one there counts. */
START_TEST(test_packed_last_id_out_of_range_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};

	fx_open(SVQISO_LAYOUT_PACKED, 7);
	ck_assert_int_eq(mock_add_chain_id(F.m, s, 3, 2), 2);
	mock_set_id(F.m, 2, 7);
	expect_violation(SVQ_RULE_ID_RANGE);
}
END_TEST

START_TEST(test_next_out_of_range_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };

	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	ck_assert_int_eq(mock_add_chain(F.m, s, 2), 0);
	mock_corrupt_next(F.m, 0, 8);
	expect_violation(SVQ_RULE_NEXT_RANGE);
}
END_TEST

START_TEST(test_indirect_next_out_of_range_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};
	struct mock_desc d;
	uint64_t t;

	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 3, &t), 0);
	mock_table_read(F.m, t, 1, &d);
	d.next = 3;	/* the table has 3 entries */
	mock_table_write(F.m, t, 1, &d);
	expect_violation(SVQ_RULE_NEXT_RANGE);
}
END_TEST

/* ---- chain length ---- */

START_TEST(test_chain_loop_rejected)
{
	uint16_t num = ring_num(_i);
	struct mock_seg s[8];
	struct mock_desc d;
	unsigned int k;

	fx_open(_i, num);
	if (_i == SVQISO_LAYOUT_SPLIT) {
		/* 0 -> 1 -> 0 */
		s[0] = (struct mock_seg){ BUF(0), 64, false };
		s[1] = (struct mock_seg){ BUF(1), 64, false };
		ck_assert_int_eq(mock_add_chain(F.m, s, 2), 0);
		mock_corrupt_next(F.m, 1, 0);
	} else {
		/* All num descriptors, the last one still saying NEXT. */
		for (k = 0; k < num; k++)
			s[k] = (struct mock_seg){ BUF(k), 64, false };
		ck_assert_int_ge(mock_add_chain(F.m, s, num), 0);
		mock_desc_read(F.m, num - 1, &d);
		d.flags |= SVQ_DESC_F_NEXT;
		mock_desc_write(F.m, num - 1, &d);
	}
	expect_violation(SVQ_RULE_CHAIN_LOOP);
}
END_TEST

START_TEST(test_chain_self_loop_rejected)
{
	struct mock_seg s = { BUF(0), 64, false };

	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	cycle_one();
	ck_assert_int_eq(mock_add_chain(F.m, &s, 1), 1);
	mock_corrupt_next(F.m, 1, 1);
	expect_violation(SVQ_RULE_CHAIN_LOOP);
}
END_TEST

/* A loop through the whole ring: num descriptors, then back to the head. */
START_TEST(test_chain_ring_loop_rejected)
{
	struct mock_seg s[8];
	unsigned int k;

	for (k = 0; k < 8; k++)
		s[k] = (struct mock_seg){ BUF(k), 64, k >= 4 };
	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	ck_assert_int_eq(mock_add_chain(F.m, s, 8), 0);
	mock_corrupt_next(F.m, 7, 0);
	expect_violation(SVQ_RULE_CHAIN_LOOP);
}
END_TEST

/* Packed, starting mid-ring: the chain crosses the wrap and comes round. */
START_TEST(test_packed_chain_over_num_after_wrap_rejected)
{
	struct mock_seg s[5];
	struct mock_desc d;
	unsigned int k;

	for (k = 0; k < 5; k++)
		s[k] = (struct mock_seg){ BUF(k), 64, false };
	fx_open(SVQISO_LAYOUT_PACKED, 5);
	cycle_one();
	cycle_one();
	ck_assert_int_ge(mock_add_chain(F.m, s, 5), 0);	/* slots 2,3,4,0,1 */
	mock_desc_read(F.m, 1, &d);
	d.flags |= SVQ_DESC_F_NEXT;
	mock_desc_write(F.m, 1, &d);
	expect_violation(SVQ_RULE_CHAIN_LOOP);
}
END_TEST

START_TEST(test_indirect_loop_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};
	struct mock_desc d;
	uint64_t t;

	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 3, &t), 0);
	/* 0 -> 1 -> 0 inside the table */
	mock_table_read(F.m, t, 1, &d);
	d.flags = SVQ_DESC_F_NEXT;
	d.next = 0;
	mock_table_write(F.m, t, 1, &d);
	expect_violation(SVQ_RULE_CHAIN_LOOP);
}
END_TEST

/* ---- indirect tables ---- */

static void set_head(uint16_t slot, uint32_t len, uint16_t flags_or, uint16_t flags_clear)
{
	struct mock_desc d;

	mock_desc_read(F.m, slot, &d);
	d.len = len;
	d.flags = (d.flags & ~flags_clear) | flags_or;
	mock_desc_write(F.m, slot, &d);
}

static void indirect_len(int layout, uint32_t len, uint16_t max_indirect,
			 unsigned int entries)
{
	struct mock_seg s[40];
	unsigned int k;

	for (k = 0; k < entries; k++)
		s[k] = (struct mock_seg){ BUF(k), 64, false };
	fx_ring(layout, ring_num(layout));
	F.cfg.max_indirect = max_indirect;
	fx_start();
	cycle_one();
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, entries, NULL), 0);
	set_head(1, len, 0, 0);
	expect_violation(SVQ_RULE_INDIRECT_LEN);
}

START_TEST(test_indirect_len_zero_rejected)
{
	indirect_len(_i, 0, 0, 2);
}
END_TEST

START_TEST(test_indirect_len_unaligned_rejected)
{
	indirect_len(_i, 17, 0, 2);
}
END_TEST

START_TEST(test_indirect_len_over_limit_rejected)
{
	indirect_len(_i, 16 * 5, 4, 5);
}
END_TEST

/* Without a configured limit the table may hold num entries, not more. */
START_TEST(test_indirect_len_over_num_rejected)
{
	uint16_t num = ring_num(_i);

	indirect_len(_i, 16 * (num + 1), 0, num + 1);
}
END_TEST

START_TEST(test_indirect_not_negotiated_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };

	fx_ring(_i, ring_num(_i));
	F.cfg.flags &= ~SVQ_RING_F_INDIRECT;
	fx_start();
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 2, NULL), 0);
	expect_violation(SVQ_RULE_INDIRECT_FEATURE);
}
END_TEST

START_TEST(test_indirect_nested_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};
	struct mock_desc d;
	uint64_t t;

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 3, &t), 0);
	mock_table_read(F.m, t, 1, &d);
	d.flags |= SVQ_DESC_F_INDIRECT;
	d.len = 32;	/* looks like a valid table of 2 */
	mock_table_write(F.m, t, 1, &d);
	expect_violation(SVQ_RULE_INDIRECT_NESTED);
}
END_TEST

START_TEST(test_indirect_with_next_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };
	struct mock_desc d;

	fx_open(_i, ring_num(_i));
	ck_assert_int_eq(mock_add_indirect_chain(F.m, s, 2, NULL), 0);
	/* A valid descriptor after it, so only the flag combination is wrong. */
	if (_i == SVQISO_LAYOUT_SPLIT) {
		mock_desc_write(F.m, 1, &(struct mock_desc){
			.addr = BUF(3), .len = 64, .flags = SVQ_DESC_F_WRITE });
		mock_corrupt_next(F.m, 0, 1);
	} else {
		mock_desc_write(F.m, 1, &(struct mock_desc){
			.addr = BUF(3), .len = 64, .id = 0,
			.flags = SVQ_DESC_F_WRITE | mock_avail_bits(true) });
		mock_desc_read(F.m, 0, &d);
		d.flags |= SVQ_DESC_F_NEXT;
		mock_desc_write(F.m, 0, &d);
	}
	expect_violation(SVQ_RULE_INDIRECT_NEXT);
}
END_TEST

/* ---- per-buffer rules, direct and inside a table ---- */

START_TEST(test_read_after_write_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, true }, { BUF(2), 64, false },
	};

	bad_chain(_i, s, 3, SVQ_RULE_READ_AFTER_WRITE);
}
END_TEST

START_TEST(test_indirect_read_after_write_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, true }, { BUF(2), 64, false },
	};

	bad_indirect(_i, s, 3, SVQ_RULE_READ_AFTER_WRITE);
}
END_TEST

START_TEST(test_zero_len_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 0, true } };

	bad_chain(_i, s, 2, SVQ_RULE_ZERO_LEN);
}
END_TEST

START_TEST(test_zero_len_head_rejected)
{
	struct mock_seg s = { BUF(0), 0, false };

	bad_chain(_i, &s, 1, SVQ_RULE_ZERO_LEN);
}
END_TEST

START_TEST(test_indirect_zero_len_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 0, false }, { BUF(1), 64, true } };

	bad_indirect(_i, s, 2, SVQ_RULE_ZERO_LEN);
}
END_TEST

START_TEST(test_addr_overflow_rejected)
{
	struct mock_seg s[2] = {
		{ BUF(0), 64, false }, { 0xfffffffffffff000ull, 0x1001, true },
	};

	bad_chain(_i, s, 2, SVQ_RULE_ADDR_OVERFLOW);
}
END_TEST

START_TEST(test_addr_overflow_max_len_rejected)
{
	struct mock_seg s = { UINT64_MAX, UINT32_MAX, false };

	bad_chain(_i, &s, 1, SVQ_RULE_ADDR_OVERFLOW);
}
END_TEST

/* addr + len - 1 == UINT64_MAX does not wrap: unmapped, not overflow. */
START_TEST(test_addr_at_top_unmapped)
{
	struct mock_seg s = { 0xfffffffffffff000ull, 0x1000, false };

	bad_chain(_i, &s, 1, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

START_TEST(test_indirect_addr_overflow_rejected)
{
	struct mock_seg s[2] = {
		{ BUF(0), 64, false }, { UINT64_MAX - 1, 4, true },
	};

	bad_indirect(_i, s, 2, SVQ_RULE_ADDR_OVERFLOW);
}
END_TEST

START_TEST(test_indirect_table_addr_overflow_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };
	struct mock_desc d;

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 2, NULL), 0);
	mock_desc_read(F.m, 0, &d);
	d.addr = UINT64_MAX - 15;	/* 32 bytes from here wrap */
	mock_desc_write(F.m, 0, &d);
	expect_violation(SVQ_RULE_ADDR_OVERFLOW);
}
END_TEST

START_TEST(test_addr_in_hole_unmapped)
{
	struct mock_seg s[2] = {
		{ BUF(0), 64, false }, { MOCK_HOLE_GPA, 64, true },
	};

	bad_chain(_i, s, 2, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

START_TEST(test_addr_past_end_unmapped)
{
	struct mock_seg s = { MOCK_END_GPA, 64, false };

	bad_chain(_i, &s, 1, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

START_TEST(test_addr_below_memory_unmapped)
{
	struct mock_seg s = { 0x1000, 64, false };

	bad_chain(_i, &s, 1, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

/* Starts in R0, runs into the hole after it. */
START_TEST(test_addr_into_hole_unmapped)
{
	struct mock_seg s = { R0_END - 16, 32, true };

	bad_chain(_i, &s, 1, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

/* Crosses R1 and R2, then runs past the end of R3. */
START_TEST(test_addr_past_last_region_unmapped)
{
	struct mock_seg s = { MOCK_R1_GPA + 0x800, 0x2900, true };

	bad_chain(_i, &s, 1, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

START_TEST(test_indirect_addr_unmapped)
{
	struct mock_seg s[2] = {
		{ BUF(0), 64, false }, { MOCK_HOLE_GPA, 64, true },
	};

	bad_indirect(_i, s, 2, SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

START_TEST(test_indirect_table_unmapped)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };
	struct mock_desc d;

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 2, NULL), 0);
	mock_desc_read(F.m, 0, &d);
	d.addr = MOCK_HOLE_GPA;
	mock_desc_write(F.m, 0, &d);
	expect_violation(SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

START_TEST(test_indirect_table_past_end_unmapped)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };
	struct mock_desc d;

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 2, NULL), 0);
	mock_desc_read(F.m, 0, &d);
	d.addr = MOCK_END_GPA - 16;	/* first entry mapped, second not */
	mock_desc_write(F.m, 0, &d);
	expect_violation(SVQ_RULE_ADDR_UNMAPPED);
}
END_TEST

/* ---- totals and segments ---- */

START_TEST(test_total_len_2_32_rejected)
{
	struct mock_seg s[2] = {
		{ MOCK_HUGE_GPA, 0x80000000u, false },
		{ MOCK_HUGE_GPA + 0x80000000u, 0x80000000u, true },
	};

	fx_open(_i, ring_num(_i));
	ck_assert(need_huge());
	ck_assert_int_ge(mock_add_chain(F.m, s, 2), 0);
	expect_violation(SVQ_RULE_TOTAL_LEN);
}
END_TEST

START_TEST(test_total_len_many_rejected)
{
	struct mock_seg s[3] = {
		{ MOCK_HUGE_GPA, 0xffffffffu, false },
		{ MOCK_HUGE_GPA, 0xffffffffu, false },
		{ MOCK_HUGE_GPA, 0xffffffffu, true },
	};

	fx_open(_i, ring_num(_i));
	ck_assert(need_huge());
	ck_assert_int_ge(mock_add_chain(F.m, s, 3), 0);
	expect_violation(SVQ_RULE_TOTAL_LEN);
}
END_TEST

START_TEST(test_indirect_total_len_rejected)
{
	struct mock_seg s[3] = {
		{ MOCK_HUGE_GPA, 0x40000000u, false },
		{ MOCK_HUGE_GPA, 0x80000000u, true },
		{ MOCK_HUGE_GPA, 0x40000000u, true },
	};

	fx_open(_i, ring_num(_i));
	ck_assert(need_huge());
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 3, NULL), 0);
	expect_violation(SVQ_RULE_TOTAL_LEN);
}
END_TEST

START_TEST(test_too_many_segs_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, true }, { BUF(2), 64, true },
	};

	fx_open(_i, ring_num(_i));
	F.e.max_seg = 2;
	ck_assert_int_ge(mock_add_chain(F.m, s, 3), 0);
	expect_violation(SVQ_RULE_TOO_MANY_SEGS);
}
END_TEST

START_TEST(test_indirect_too_many_segs_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, true }, { BUF(2), 64, true },
	};

	fx_open(_i, ring_num(_i));
	F.e.max_seg = 2;
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 3, NULL), 0);
	expect_violation(SVQ_RULE_TOO_MANY_SEGS);
}
END_TEST

/* One descriptor over R1, R2 and R3 needs three segments. */
START_TEST(test_cross_region_too_many_segs_rejected)
{
	struct mock_seg s = { MOCK_R1_GPA + 0xff0, 0x1020, true };

	fx_open(_i, ring_num(_i));
	F.e.max_seg = 2;
	ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
	expect_violation(SVQ_RULE_TOO_MANY_SEGS);
}
END_TEST

START_TEST(test_zero_max_seg_rejected)
{
	struct mock_seg s = { BUF(0), 64, true };

	fx_open(_i, ring_num(_i));
	F.e.max_seg = 0;
	ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
	expect_violation(SVQ_RULE_TOO_MANY_SEGS);
}
END_TEST

/* ---- in flight ---- */

/* num chains popped and not pushed; the driver offers one more. */
START_TEST(test_inflight_over_num_rejected)
{
	struct mock_seg s = { BUF(0), 64, true };
	uint16_t num = ring_num(_i), k;

	fx_open(_i, num);
	for (k = 0; k < num; k++) {
		ck_assert_int_eq(mock_add_chain(F.m, &s, 1), k);
		pop_ok();
		ck_assert_uint_eq(F.e.id, k);
	}
	ck_assert_uint_eq(F.vq.inflight, num);
	ck_assert_int_eq(mock_add_chain_id(F.m, &s, 1, 0), 0);
	expect_violation(SVQ_RULE_INFLIGHT);
}
END_TEST

/* One chain in flight; the driver makes the same head/id available again. */
START_TEST(test_inflight_same_id_rejected)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };

	fx_open(_i, ring_num(_i));
	cycle_one();
	ck_assert_int_eq(mock_add_chain_id(F.m, s, 2, 3), 3);
	pop_ok();
	ck_assert_uint_eq(F.e.id, 3);
	ck_assert_int_eq(mock_add_chain_id(F.m, s, 1, 3), 3);
	expect_violation(SVQ_RULE_INFLIGHT);
}
END_TEST

/* Packed: ids are free but the ring slots are not (3 held + 2 > 4). */
START_TEST(test_packed_inflight_descs_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};

	fx_open(SVQISO_LAYOUT_PACKED, 4);
	ck_assert_int_eq(mock_add_chain(F.m, s, 3), 0);
	pop_ok();
	ck_assert_int_eq(mock_add_chain(F.m, s, 2), 1);	/* slots 3, 0 */
	expect_violation(SVQ_RULE_INFLIGHT);
}
END_TEST

/* ---- packed wrap counters ---- */

START_TEST(test_packed_member_wrong_lap_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};

	fx_open(SVQISO_LAYOUT_PACKED, 7);
	ck_assert_int_eq(mock_add_chain(F.m, s, 3), 0);
	mock_flip_wrap(F.m, 1);
	expect_violation(SVQ_RULE_WRAP);
}
END_TEST

START_TEST(test_packed_member_used_flags_rejected)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};

	fx_open(SVQISO_LAYOUT_PACKED, 7);
	ck_assert_int_eq(mock_add_chain(F.m, s, 3), 0);
	mock_set_wrap_bits(F.m, 2, true, true);	/* looks used in lap 1 */
	expect_violation(SVQ_RULE_WRAP);
}
END_TEST

/* The chain crosses the ring end: slot 0 must carry the flipped counter. */
static void packed_chain_over_end(bool corrupt)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};
	int id;

	fx_open(SVQISO_LAYOUT_PACKED, 4);
	cycle_one();
	cycle_one();
	id = mock_add_chain(F.m, s, 3);		/* slots 2, 3, 0 */
	ck_assert_int_ge(id, 0);
	ck_assert(!F.m->avail_wrap);
	if (corrupt) {
		/* Slot 0 still in lap 1: what a driver that forgot to flip writes. */
		mock_set_wrap_bits(F.m, 0, true, false);
		expect_violation(SVQ_RULE_WRAP);
		return;
	}
	pop_ok();
	ck_assert_uint_eq(F.e.id, id);
	ck_assert_uint_eq(F.e.ndescs, 3);
	ck_assert_uint_eq(F.e.nseg, 3);
	ck_assert_uint_eq(svq_dev_get_base(&F.vq) & 0xffff, 1);	/* slot 1, lap 0 */
	ck_assert_int_eq(svq_dev_push(&F.vq, id, 64), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_used_len(F.m, id), 64);
}

START_TEST(test_packed_chain_over_end_accepted)
{
	packed_chain_over_end(false);
}
END_TEST

START_TEST(test_packed_chain_over_end_stale_lap_rejected)
{
	packed_chain_over_end(true);
}
END_TEST

/* ---- valid edge cases ---- */

START_TEST(test_empty_ring_returns_zero)
{
	fx_open(_i, ring_num(_i));
	mock_snapshot(F.m);
	ck_assert_int_eq(svq_dev_pop(&F.vq, &F.e), 0);
	ck_assert_uint_eq(F.e.nseg, 0);
	ck_assert(!F.vq.rc.broken);
	ck_assert_uint_eq(F.log_lines, 0);
	ck_assert(mock_unchanged(F.m));
}
END_TEST

START_TEST(test_max_chain_accepted)
{
	uint16_t num = ring_num(_i), k;
	struct mock_seg s[8];
	int id;

	for (k = 0; k < num; k++)
		s[k] = (struct mock_seg){ BUF(k), 16 + k, k >= num / 2 };
	fx_open(_i, num);
	cycle_one();	/* start mid-ring: the chain wraps the table/ring */
	id = mock_add_chain(F.m, s, num);
	ck_assert_int_ge(id, 0);
	pop_ok();
	ck_assert_uint_eq(F.e.id, id);
	ck_assert_uint_eq(F.e.ndescs, num);
	ck_assert_uint_eq(F.e.nseg, num);
	ck_assert_uint_eq(F.e.nout, num / 2);
	for (k = 0; k < num; k++) {
		ck_assert_uint_eq(F.seg[k].addr, BUF(k));
		ck_assert_uint_eq(F.seg[k].len, 16 + k);
		ck_assert(F.seg[k].write == (k >= num / 2));
		ck_assert_ptr_eq(F.seg[k].hva, mock_hva(F.m, BUF(k), 16 + k));
	}
	ck_assert_int_eq(svq_dev_push(&F.vq, id, 5), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_used_len(F.m, id), 5);
	ck_assert_int_eq(svq_dev_pop(&F.vq, &F.e), 0);
	ck_assert(!F.vq.rc.broken);
}
END_TEST

START_TEST(test_split_avail_idx_num_ahead_accepted)
{
	struct mock_seg s = { BUF(0), 64, true };
	uint16_t k;

	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	F.m->hold = true;
	for (k = 0; k < 8; k++)
		ck_assert_int_eq(mock_add_chain(F.m, &s, 1), k);
	mock_publish(F.m);
	for (k = 0; k < 8; k++) {
		pop_ok();
		ck_assert_uint_eq(F.e.id, k);
	}
	ck_assert_uint_eq(F.vq.inflight, 8);
	ck_assert_int_eq(svq_dev_pop(&F.vq, &F.e), 0);
	ck_assert(!F.vq.rc.broken);
}
END_TEST

static void indirect_max(int layout, uint16_t max_indirect, unsigned int n)
{
	struct mock_seg s[16];
	unsigned int k;
	int id;

	for (k = 0; k < n; k++)
		s[k] = (struct mock_seg){ BUF(k), 32, k == n - 1 };
	fx_ring(layout, ring_num(layout));
	F.cfg.max_indirect = max_indirect;
	fx_start();
	id = mock_add_indirect_chain(F.m, s, n, NULL);
	pop_ok();
	ck_assert_uint_eq(F.e.id, id);
	ck_assert_uint_eq(F.e.ndescs, 1);
	ck_assert_uint_eq(F.e.nseg, n);
	ck_assert_uint_eq(F.e.nout, n - 1);
	ck_assert_uint_eq(F.e.out_bytes, 32 * (n - 1));
	ck_assert_uint_eq(F.e.in_bytes, 32);
	for (k = 0; k < n; k++) {
		ck_assert_uint_eq(F.seg[k].addr, BUF(k));
		ck_assert_ptr_eq(F.seg[k].hva, mock_hva(F.m, BUF(k), 32));
	}
	ck_assert_int_eq(svq_dev_push(&F.vq, id, 32), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_used_len(F.m, id), 32);
}

START_TEST(test_indirect_max_entries_accepted)
{
	indirect_max(_i, 4, 4);
}
END_TEST

START_TEST(test_indirect_num_entries_accepted)
{
	indirect_max(_i, 0, ring_num(_i));
}
END_TEST

/* An indirect table larger than the ring is fine when the limit allows it. */
START_TEST(test_indirect_over_num_within_limit_accepted)
{
	indirect_max(_i, 16, 12);
}
END_TEST

START_TEST(test_total_len_max_accepted)
{
	struct mock_seg s[2] = {
		{ MOCK_HUGE_GPA, 0x80000000u, false },
		{ MOCK_HUGE_GPA + 0x80000000u, 0x7fffffffu, true },
	};
	int id;

	fx_open(_i, ring_num(_i));
	ck_assert(need_huge());
	id = mock_add_chain(F.m, s, 2);
	pop_ok();
	ck_assert_uint_eq(F.e.id, id);
	ck_assert_uint_eq(F.e.nseg, 2);
	ck_assert_uint_eq(F.e.out_bytes, 0x80000000u);
	ck_assert_uint_eq(F.e.in_bytes, 0x7fffffffu);
	ck_assert_uint_eq(F.seg[0].len, 0x80000000u);
	ck_assert_uint_eq(F.seg[1].len, 0x7fffffffu);
	ck_assert_ptr_eq(F.seg[1].hva, F.m->huge.hva + 0x80000000u);
	ck_assert_int_eq(svq_dev_push(&F.vq, id, 0x7fffffffu), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_used_len(F.m, id), 0x7fffffff);
}
END_TEST

START_TEST(test_cross_region_segments_accepted)
{
	/* A readable buffer, then a writable one with 0x10 bytes in R1, all
	 * of R2 and 0x10 in R3. */
	struct mock_seg s[2] = {
		{ BUF(0), 8, false },
		{ MOCK_R1_GPA + 0xff0, 0x1020, true },
	};
	int id;

	fx_open(_i, ring_num(_i));
	F.e.max_seg = 4;
	id = mock_add_chain(F.m, s, 2);
	pop_ok();
	ck_assert_uint_eq(F.e.id, id);
	ck_assert_uint_eq(F.e.ndescs, 2);
	ck_assert_uint_eq(F.e.nseg, 4);
	ck_assert_uint_eq(F.e.nout, 1);
	ck_assert_uint_eq(F.e.out_bytes, 8);
	ck_assert_uint_eq(F.e.in_bytes, 0x1020);
	ck_assert_uint_eq(F.seg[1].addr, MOCK_R1_GPA + 0xff0);
	ck_assert_uint_eq(F.seg[1].len, 0x10);
	ck_assert_ptr_eq(F.seg[1].hva, mock_hva(F.m, MOCK_R1_GPA + 0xff0, 0x10));
	ck_assert_uint_eq(F.seg[2].addr, R2_GPA);
	ck_assert_uint_eq(F.seg[2].len, 0x1000);
	ck_assert_ptr_eq(F.seg[2].hva, mock_hva(F.m, R2_GPA, 0x1000));
	ck_assert_uint_eq(F.seg[3].addr, R3_GPA);
	ck_assert_uint_eq(F.seg[3].len, 0x10);
	ck_assert_ptr_eq(F.seg[3].hva, mock_hva(F.m, R3_GPA, 0x10));
	ck_assert(F.seg[1].write && F.seg[2].write && F.seg[3].write);
	ck_assert(!F.seg[0].write);
}
END_TEST

/* The same crossing buffer inside an indirect table, segments exactly full. */
START_TEST(test_indirect_cross_region_segments_accepted)
{
	struct mock_seg s[1] = { { MOCK_R1_GPA + 0x800, 0x1000, false } };

	fx_open(_i, ring_num(_i));
	F.e.max_seg = 2;
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 1, NULL), 0);
	pop_ok();
	ck_assert_uint_eq(F.e.nseg, 2);
	ck_assert_uint_eq(F.e.nout, 2);
	ck_assert_uint_eq(F.seg[0].len, 0x800);
	ck_assert_uint_eq(F.seg[1].len, 0x800);
	ck_assert_ptr_eq(F.seg[0].hva, mock_hva(F.m, MOCK_R1_GPA + 0x800, 0x800));
	ck_assert_ptr_eq(F.seg[1].hva, mock_hva(F.m, R2_GPA, 0x800));
}
END_TEST

START_TEST(test_readable_only_accepted)
{
	struct mock_seg s[3] = {
		{ BUF(0), 1, false }, { BUF(1), 2, false }, { BUF(2), 3, false },
	};

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_chain(F.m, s, 3), 0);
	pop_ok();
	ck_assert_uint_eq(F.e.nseg, 3);
	ck_assert_uint_eq(F.e.nout, 3);
	ck_assert_uint_eq(F.e.out_bytes, 6);
	ck_assert_uint_eq(F.e.in_bytes, 0);
	ck_assert_int_eq(svq_dev_push(&F.vq, F.e.id, 0), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_used_len(F.m, F.e.id), 0);
}
END_TEST

START_TEST(test_writable_only_accepted)
{
	struct mock_seg s[3] = {
		{ BUF(0), 1, true }, { BUF(1), 2, true }, { BUF(2), 3, true },
	};

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_chain(F.m, s, 3), 0);
	pop_ok();
	ck_assert_uint_eq(F.e.nseg, 3);
	ck_assert_uint_eq(F.e.nout, 0);
	ck_assert_uint_eq(F.e.out_bytes, 0);
	ck_assert_uint_eq(F.e.in_bytes, 6);
	ck_assert_int_eq(svq_dev_push(&F.vq, F.e.id, 6), 0);
	ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
	ck_assert_int_eq(mock_used_len(F.m, F.e.id), 6);
}
END_TEST

/* Packed: only the last descriptor's id counts; the others are ignored. */
START_TEST(test_packed_id_from_last_desc_accepted)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, false }, { BUF(2), 64, true },
	};

	fx_open(SVQISO_LAYOUT_PACKED, 7);
	ck_assert_int_eq(mock_add_chain_id(F.m, s, 3, 4), 4);
	mock_set_id(F.m, 0, 0xffff);
	mock_set_id(F.m, 1, 6);
	pop_ok();
	ck_assert_uint_eq(F.e.id, 4);
	ck_assert_uint_eq(F.e.ndescs, 3);
}
END_TEST

/* Several chains of different lengths, completed out of order, for laps. */
START_TEST(test_push_flush_reads_back)
{
	uint16_t num = ring_num(_i);
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, true }, { BUF(2), 64, true },
	};
	int id[3];
	unsigned int lap, k;
	uint16_t got;
	uint32_t len;

	fx_open(_i, num);
	for (lap = 0; lap < 2 * num; lap++) {
		for (k = 0; k < 3; k++)
			id[k] = mock_add_chain(F.m, s, k + 1);
		for (k = 0; k < 3; k++) {
			pop_ok();
			ck_assert_int_eq(F.e.id, id[k]);
			ck_assert_uint_eq(F.e.ndescs, k + 1);
		}
		/* Push 2, 0, 1: used entries come back in push order. */
		ck_assert_int_eq(svq_dev_push(&F.vq, id[2], 300 + lap), 0);
		ck_assert_int_eq(svq_dev_push(&F.vq, id[0], 100 + lap), 0);
		ck_assert_int_eq(mock_get_used(F.m, &got, &len), 0);	/* not yet */
		ck_assert_int_eq(svq_dev_flush(&F.vq), 2);
		ck_assert_int_eq(svq_dev_push(&F.vq, id[1], 200 + lap), 0);
		ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
		ck_assert_int_eq(svq_dev_flush(&F.vq), 0);
		ck_assert_int_eq(mock_used_len(F.m, id[2]), 300 + lap);
		ck_assert_int_eq(mock_used_len(F.m, id[0]), 100 + lap);
		ck_assert_int_eq(mock_used_len(F.m, id[1]), 200 + lap);
		ck_assert_int_eq(mock_used_len(F.m, 0), -2);
		ck_assert_uint_eq(F.vq.inflight, 0);
	}
	ck_assert(!F.vq.rc.broken);
	ck_assert_uint_eq(F.log_lines, 0);
}
END_TEST

/* num chains in flight, all completed, then num more: reuse is legal. */
START_TEST(test_inflight_full_then_reuse_accepted)
{
	struct mock_seg s = { BUF(0), 64, true };
	uint16_t num = ring_num(_i), k;
	int round;

	fx_open(_i, num);
	for (round = 0; round < 3; round++) {
		for (k = 0; k < num; k++) {
			ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
			pop_ok();
		}
		ck_assert_uint_eq(F.vq.inflight, num);
		ck_assert_int_eq(svq_dev_pop(&F.vq, &F.e), 0);
		for (k = 0; k < num; k++)
			ck_assert_int_eq(svq_dev_push(&F.vq, k, k), 0);
		ck_assert_int_eq(svq_dev_flush(&F.vq), num);
		for (k = 0; k < num; k++)
			ck_assert_int_eq(mock_used_len(F.m, k), k);
	}
	ck_assert(!F.vq.rc.broken);
}
END_TEST

/* Each descriptor is translated, never dereferenced: the huge region faults. */
START_TEST(test_buffers_not_touched)
{
	struct mock_seg s[2] = {
		{ MOCK_HUGE_GPA + 0x1000, 4096, false },
		{ MOCK_HUGE_GPA + 0x3000, 4096, true },
	};

	fx_open(_i, ring_num(_i));
	ck_assert(need_huge());
	ck_assert_int_ge(mock_add_chain(F.m, s, 2), 0);
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 2, NULL), 0);
	pop_ok();
	pop_ok();
	ck_assert_ptr_eq(F.seg[0].hva, F.m->huge.hva + 0x1000);
}
END_TEST

/* ---- the driver rewrites the ring during a walk ---- */

struct race {
	uint64_t when;		/* buffer address whose translation triggers it */
	uint64_t table;		/* 0: rewrite ring slot @slot; else table entries */
	uint16_t slot;
	bool done;
};

/* Turn already-read descriptors into garbage that would break every rule. */
static void race_rewrite(struct mock *m, uint64_t addr, void *arg)
{
	struct race *r = arg;
	struct mock_desc d;
	unsigned int i;

	if (r->done || addr != r->when)
		return;
	r->done = true;
	if (!r->table) {
		mock_desc_read(m, r->slot, &d);
		d.addr = MOCK_HOLE_GPA;
		d.len = 0;
		d.flags ^= SVQ_DESC_F_WRITE;
		d.next = r->slot;	/* split: a self loop if re-read */
		d.id = 0xffff;
		mock_desc_write(m, r->slot, &d);
		return;
	}
	for (i = 0; i < 3; i++) {
		mock_table_read(m, r->table, i, &d);
		d.addr = MOCK_HOLE_GPA;
		d.len = 0;
		d.flags |= SVQ_DESC_F_INDIRECT;
		d.next = 0;
		mock_table_write(m, r->table, i, &d);
	}
}

START_TEST(test_desc_rewritten_during_walk_read_once)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };
	struct race r = { .when = BUF(0) };
	int id;

	fx_open(_i, ring_num(_i));
	id = mock_add_chain(F.m, s, 2);
	r.slot = 0;
	F.m->on_translate = race_rewrite;
	F.m->on_translate_arg = &r;
	pop_ok();
	ck_assert(r.done);
	ck_assert_uint_eq(F.e.id, id);
	ck_assert_uint_eq(F.e.nseg, 2);
	ck_assert_uint_eq(F.seg[0].addr, BUF(0));
	ck_assert_uint_eq(F.seg[0].len, 64);
	ck_assert(!F.seg[0].write);
	ck_assert_uint_eq(F.seg[1].addr, BUF(1));
	ck_assert(F.seg[1].write);
}
END_TEST

START_TEST(test_indirect_rewritten_during_walk_read_once)
{
	struct mock_seg s[3] = {
		{ BUF(0), 64, false }, { BUF(1), 64, true }, { BUF(2), 64, true },
	};
	struct race r = { .when = BUF(0) };
	unsigned int k;

	fx_open(_i, ring_num(_i));
	ck_assert_int_ge(mock_add_indirect_chain(F.m, s, 3, &r.table), 0);
	F.m->on_translate = race_rewrite;
	F.m->on_translate_arg = &r;
	pop_ok();
	ck_assert(r.done);
	ck_assert_uint_eq(F.e.nseg, 3);
	for (k = 0; k < 3; k++) {
		ck_assert_uint_eq(F.seg[k].addr, BUF(k));
		ck_assert_uint_eq(F.seg[k].len, 64);
		ck_assert(F.seg[k].write == (k > 0));
	}
}
END_TEST

/* num == 1: every chain wraps the ring (packed: flips both counters). */
START_TEST(test_ring_of_one_accepted)
{
	struct mock_seg s = { BUF(0), 64, true };
	unsigned int lap;

	fx_open(_i, 1);
	for (lap = 0; lap < 5; lap++) {
		ck_assert_int_eq(mock_add_chain(F.m, &s, 1), 0);
		pop_ok();
		ck_assert_uint_eq(F.e.id, 0);
		ck_assert_int_eq(svq_dev_pop(&F.vq, &F.e), 0);
		ck_assert_int_eq(svq_dev_push(&F.vq, 0, lap), 0);
		ck_assert_int_eq(svq_dev_flush(&F.vq), 1);
		ck_assert_int_eq(mock_used_len(F.m, 0), lap);
	}
	ck_assert(!F.vq.rc.broken);
}
END_TEST

/* ---- a chain of one direct descriptor ---- */

/* Both directions fill the whole element, from any earlier content. */
START_TEST(test_one_desc_element_filled)
{
	struct mock_seg s[2] = { { BUF(1), 100, false }, { BUF(2), 200, true } };
	unsigned int k;
	int id;

	fx_open(_i, ring_num(_i));
	for (k = 0; k < 2; k++) {
		F.e = (struct svq_elem){ .id = 77, .ndescs = 9, .nseg = 5,
					 .nout = 5, .out_bytes = 1, .in_bytes = 1,
					 .seg = F.seg, .max_seg = MAX_SEG };
		id = mock_add_chain(F.m, &s[k], 1);
		ck_assert_int_ge(id, 0);
		pop_ok();
		ck_assert_uint_eq(F.e.id, id);
		ck_assert_uint_eq(F.e.ndescs, 1);
		ck_assert_uint_eq(F.e.nseg, 1);
		ck_assert_uint_eq(F.e.nout, s[k].write ? 0 : 1);
		ck_assert_uint_eq(F.e.out_bytes, s[k].write ? 0 : s[k].len);
		ck_assert_uint_eq(F.e.in_bytes, s[k].write ? s[k].len : 0);
		ck_assert_uint_eq(F.seg[0].addr, s[k].gpa);
		ck_assert_uint_eq(F.seg[0].len, s[k].len);
		ck_assert_ptr_eq(F.seg[0].hva, mock_hva(F.m, s[k].gpa, s[k].len));
		ck_assert(F.seg[0].write == s[k].write);
		ck_assert_uint_eq(F.vq.inflight, k + 1);
	}
}
END_TEST

/*
 * The ring has served a chain in R0 (the map's cached region now), then
 * gets @s alone with room for @max_seg segments: it must break with @rule
 * and log exactly @line, the line the general walk has always logged.
 */
static void one_desc_line(int layout, struct mock_seg s, uint16_t max_seg,
			  enum svq_rule rule, const char *line)
{
	fx_open(layout, ring_num(layout));
	cycle_one();
	F.e.max_seg = max_seg;
	ck_assert_int_ge(mock_add_chain(F.m, &s, 1), 0);
	expect_violation(rule);
	ck_assert_str_eq(F.log_last, line);
	ck_assert_str_eq(F.vq.rc.reason, line);
	fx_teardown();
}

START_TEST(test_one_desc_log_lines_unchanged)
{
	one_desc_line(_i, (struct mock_seg){ BUF(2), 0, true }, MAX_SEG,
		      SVQ_RULE_ZERO_LEN,
		      "mock: broken (zero-len): zero-length buffer at 0x10020200");
	one_desc_line(_i, (struct mock_seg){ UINT64_MAX, UINT32_MAX, false }, MAX_SEG,
		      SVQ_RULE_ADDR_OVERFLOW,
		      "mock: broken (addr-overflow): buffer 0xffffffffffffffff"
		      " + 4294967295 wraps");
	one_desc_line(_i, (struct mock_seg){ MOCK_HOLE_GPA, 64, false }, MAX_SEG,
		      SVQ_RULE_ADDR_UNMAPPED,
		      "mock: broken (addr-unmapped): buffer 0x18000000 + 64:"
		      " 0x18000000 is not guest memory");
	/* Starts in the cached region, ends in the hole after it. */
	one_desc_line(_i, (struct mock_seg){ R0_END - 16, 32, true }, MAX_SEG,
		      SVQ_RULE_ADDR_UNMAPPED,
		      "mock: broken (addr-unmapped): buffer 0x1003fff0 + 32:"
		      " 0x10040000 is not guest memory");
	one_desc_line(_i, (struct mock_seg){ BUF(2), 64, true }, 0,
		      SVQ_RULE_TOO_MANY_SEGS,
		      "mock: broken (too-many-segs): chain needs more than 0 segments");
}
END_TEST

/* A one-descriptor chain whose head (buffer id) is still in flight. */
START_TEST(test_one_desc_head_in_flight_rejected)
{
	struct mock_seg s = { BUF(1), 64, true };

	fx_open(_i, ring_num(_i));
	cycle_one();
	ck_assert_int_eq(mock_add_chain_id(F.m, &s, 1, 3), 3);
	pop_ok();
	ck_assert_int_eq(mock_add_chain_id(F.m, &s, 1, 3), 3);
	expect_violation(SVQ_RULE_INFLIGHT);
	ck_assert_str_eq(F.log_last, _i == SVQISO_LAYOUT_SPLIT ?
			 "mock: broken (inflight): head 3 made available while in flight" :
			 "mock: broken (inflight): buffer id 3 made available while in flight");
}
END_TEST

/*
 * One-descriptor chains take no walk generation and leave no stamp. Chains
 * that link on still get a fresh one: a chain over descriptors earlier
 * single chains used is fine, a loop is still caught, also once the
 * generation counter has wrapped.
 */
START_TEST(test_one_desc_then_chains_keep_loop_check)
{
	struct mock_seg s[2] = { { BUF(0), 64, false }, { BUF(1), 64, true } };
	unsigned int k;

	fx_open(SVQISO_LAYOUT_SPLIT, 8);
	F.vq.gen = UINT32_MAX;
	for (k = 0; k < 12; k++) {
		ck_assert_int_ge(mock_add_chain(F.m, s, k % 3 ? 1 : 2), 0);
		pop_ok();
		ck_assert_int_eq(svq_dev_push(&F.vq, F.e.id, 0), 0);
	}
	ck_assert_uint_le(F.vq.gen, 12);	/* the counter wrapped */
	/* Descriptors 0 and 1 again, 1 linking back to 0. */
	ck_assert_int_eq(mock_add_chain(F.m, s, 2), 0);
	mock_corrupt_next(F.m, 1, 0);
	expect_violation(SVQ_RULE_CHAIN_LOOP);
	ck_assert_str_eq(F.log_last,
			 "mock: broken (chain-loop): descriptor 0 reached twice from head 0");
}
END_TEST

/* Run through the mock's ops and again through the built-in map. */
static void add_one_desc_tests(TCase *tc)
{
	tcase_add_loop_test(tc, test_one_desc_element_filled, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_one_desc_log_lines_unchanged, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_one_desc_head_in_flight_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_one_desc_then_chains_keep_loop_check);
}

static Suite *validate_suite(void)
{
	Suite *s = suite_create("validate");
	TCase *tc;

	tc = tcase_create("rules");
	tcase_add_test(tc, test_rule_names_errnos_distinct);
	suite_add_tcase(s, tc);

	tc = tcase_create("range");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test_avail_idx_ahead_rejected);
	tcase_add_test(tc, test_avail_idx_far_behind_rejected);
	tcase_add_loop_test(tc, test_head_out_of_range_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_head_max_u16_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_packed_last_id_out_of_range_rejected);
	tcase_add_test(tc, test_next_out_of_range_rejected);
	tcase_add_test(tc, test_indirect_next_out_of_range_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("loop");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_loop_test(tc, test_chain_loop_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_chain_self_loop_rejected);
	tcase_add_test(tc, test_chain_ring_loop_rejected);
	tcase_add_test(tc, test_packed_chain_over_num_after_wrap_rejected);
	tcase_add_test(tc, test_indirect_loop_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("indirect");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_loop_test(tc, test_indirect_len_zero_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_len_unaligned_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_len_over_limit_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_len_over_num_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_not_negotiated_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_nested_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_with_next_rejected, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("buffer");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_loop_test(tc, test_read_after_write_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_read_after_write_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_zero_len_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_zero_len_head_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_zero_len_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_overflow_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_overflow_max_len_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_at_top_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_addr_overflow_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_table_addr_overflow_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_in_hole_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_past_end_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_below_memory_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_into_hole_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_past_last_region_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_addr_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_table_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_table_past_end_unmapped, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("totals");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_loop_test(tc, test_total_len_2_32_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_total_len_many_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_total_len_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_too_many_segs_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_too_many_segs_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_cross_region_too_many_segs_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_zero_max_seg_rejected, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("inflight");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_loop_test(tc, test_inflight_over_num_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_inflight_same_id_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_packed_inflight_descs_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("wrap");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test_packed_member_wrong_lap_rejected);
	tcase_add_test(tc, test_packed_member_used_flags_rejected);
	tcase_add_test(tc, test_packed_chain_over_end_accepted);
	tcase_add_test(tc, test_packed_chain_over_end_stale_lap_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("valid");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_loop_test(tc, test_empty_ring_returns_zero, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_max_chain_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_split_avail_idx_num_ahead_accepted);
	tcase_add_loop_test(tc, test_indirect_max_entries_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_num_entries_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_over_num_within_limit_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_total_len_max_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_cross_region_segments_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_cross_region_segments_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_readable_only_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_writable_only_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_packed_id_from_last_desc_accepted);
	tcase_add_loop_test(tc, test_push_flush_reads_back, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_inflight_full_then_reuse_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_buffers_not_touched, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_desc_rewritten_during_walk_read_once, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_indirect_rewritten_during_walk_read_once, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_ring_of_one_accepted, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("one-desc");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	add_one_desc_tests(tc);
	suite_add_tcase(s, tc);

	/* Again, translated inline through the built-in map's cached region. */
	tc = tcase_create("map");
	tcase_add_checked_fixture(tc, fx_setup_map, fx_teardown);
	add_one_desc_tests(tc);
	tcase_add_loop_test(tc, test_zero_len_head_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_zero_len_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_read_after_write_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_overflow_max_len_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_at_top_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_in_hole_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_past_end_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_below_memory_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_into_hole_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_addr_past_last_region_unmapped, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_too_many_segs_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_cross_region_too_many_segs_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_zero_max_seg_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_inflight_same_id_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_chain_loop_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_chain_self_loop_rejected);
	tcase_add_loop_test(tc, test_cross_region_segments_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_readable_only_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_writable_only_accepted, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_push_flush_reads_back, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(validate_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
