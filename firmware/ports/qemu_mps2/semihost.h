/* Arm semihosting calls (QEMU: -semihosting-config enable=on,target=native): the host's files stand in for
 * what a board keeps across a power cycle. */
#ifndef TVLM_SEMIHOST_H
#define TVLM_SEMIHOST_H

#include <stdint.h>

/* The command line QEMU passes (-semihosting-config arg=...), NUL terminated; 0 when there is none. */
int tvlm_semihost_cmdline(char *buf, uint32_t size);
/* open with an ISO C fopen mode index (1 "rb", 3 "r+b", 5 "wb"); a handle, or -1 */
int32_t tvlm_semihost_open(const char *path, uint32_t mode);
int32_t tvlm_semihost_close(int32_t fd);
/* bytes NOT transferred (0: all), as the semihosting calls report it */
int32_t tvlm_semihost_read(int32_t fd, void *buf, uint32_t len);
int32_t tvlm_semihost_write(int32_t fd, const void *buf, uint32_t len);
/* absolute position; 0 on success */
int32_t tvlm_semihost_seek(int32_t fd, uint32_t pos);

#endif
