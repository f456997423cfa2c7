/* SPDX-License-Identifier: MIT */
/* A Check run held to its plan; see ckplan.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckplan.h"

/* Whether the space-separated list in environment variable @var names @tag. */
static bool env_names(const char *var, const char *tag)
{
	const char *l = getenv(var);
	size_t n = tag ? strlen(tag) : 0;

	while (n && l && *l) {
		l += strspn(l, " ");
		if (!strncmp(l, tag, n) && (l[n] == ' ' || !l[n]))
			return true;
		l += strcspn(l, " ");
	}
	return false;
}

TCase *ckplan_tcase(struct ckplan *p, Suite *s, const char *name,
		    const char *tag, double timeout)
{
	const char *suite = getenv("CK_RUN_SUITE"), *tcase = getenv("CK_RUN_CASE");
	const char *incl = getenv("CK_INCLUDE_TAGS");
	TCase *tc = tcase_create(name);

	p->selected = (!suite || !strcmp(suite, p->suite)) &&
		      (!tcase || !strcmp(tcase, name)) &&
		      (!incl || !*incl || env_names("CK_INCLUDE_TAGS", tag)) &&
		      !env_names("CK_EXCLUDE_TAGS", tag);
	if (tag)
		tcase_set_tags(tc, tag);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

void ckplan_add(struct ckplan *p, TCase *tc, const TTest *tf, int start, int end)
{
	tcase_add_loop_test(tc, tf, start, end);
	if (p->selected)
		p->planned += end - start;
}

int ckplan_run(struct ckplan *p, Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed, ran;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	ran = srunner_ntests_run(sr);
	if (ran != p->planned) {
		printf("# %d of %d tests reported a result\n", ran, p->planned);
		failed++;
	}
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
