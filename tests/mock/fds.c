/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdlib.h>
#include <check.h>

#include "fds.h"

unsigned int mock_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

int mock_max_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int max = -1;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && atoi(de->d_name) > max &&
		    atoi(de->d_name) != dirfd(d))
			max = atoi(de->d_name);
	closedir(d);
	return max;
}
