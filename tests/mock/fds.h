/* SPDX-License-Identifier: MIT */
/* This process's open file descriptors, for fd-leak checks in tests. */
#ifndef MOCK_FDS_H
#define MOCK_FDS_H

/* Number of open fds (not counting the one used to list them). */
unsigned int mock_count_fds(void);

/* Highest open fd, or -1. */
int mock_max_fd(void);

#endif /* MOCK_FDS_H */
