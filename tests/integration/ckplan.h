/* SPDX-License-Identifier: MIT */
/*
 * A Check run that holds its tests to a plan: each tcase is counted when
 * Check will run it (CK_RUN_SUITE, CK_RUN_CASE, and CK_INCLUDE_TAGS /
 * CK_EXCLUDE_TAGS against the tcase's one tag or none), and a run in which
 * fewer tests reported a result than were planned fails, instead of
 * leaving a TAP plan one short with nothing failed (a test process that
 * vanished, say).
 */
#ifndef SVQ_TESTS_CKPLAN_H
#define SVQ_TESTS_CKPLAN_H

#include <stdbool.h>
#include <check.h>

struct ckplan {
	const char *suite;		/* the suite's name */
	int planned;			/* tests Check will run */
	bool selected;			/* the last tcase made will run */
};

/*
 * ckplan_tcase() - a tcase named @name, tagged @tag (NULL: none), with
 * @timeout seconds per test, added to @s; fixtures are the caller's.
 */
TCase *ckplan_tcase(struct ckplan *p, Suite *s, const char *name,
		    const char *tag, double timeout);

/* ckplan_add() - tcase_add_loop_test(@tc, @tf, @start, @end), counted. */
void ckplan_add(struct ckplan *p, TCase *tc, const TTest *tf, int start, int end);

/*
 * ckplan_run() - run @s with TAP on stdout and nothing else there.
 * Return: EXIT_SUCCESS, or EXIT_FAILURE if a test failed or did not report.
 */
int ckplan_run(struct ckplan *p, Suite *s);

#endif /* SVQ_TESTS_CKPLAN_H */
