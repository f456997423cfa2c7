/* SPDX-License-Identifier: MIT */
/*
 * Preloaded into QEMU by test_qemu's migrate-on-nolog variant: libsvqiso
 * is never given QEMU's dirty log, so migration does not learn which guest
 * pages svqiso wrote. The migration checks must then fail; if they pass,
 * they cannot tell a lost write.
 */
#include <svqiso/vhost.h>

int svqiso_vhost_set_dirty_log(struct svqiso_vhost *vh,
			       const struct svqiso_dirty_log *log)
{
	(void)vh;
	(void)log;
	return 0;
}
