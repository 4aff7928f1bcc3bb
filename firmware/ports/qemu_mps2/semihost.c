#include "semihost.h"

#include <string.h>

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_SEEK = 0x0a,
       SYS_GET_CMDLINE = 0x15 };

static int32_t call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

int tvlm_semihost_cmdline(char *buf, uint32_t size)
{
    uint32_t block[2] = {(uint32_t)(uintptr_t)buf, size};
    if (size == 0 || call(SYS_GET_CMDLINE, block) != 0) return 0;
    buf[size - 1] = '\0';
    return 1;
}

int32_t tvlm_semihost_open(const char *path, uint32_t mode)
{
    uint32_t block[3] = {(uint32_t)(uintptr_t)path, mode, (uint32_t)strlen(path)};
    return call(SYS_OPEN, block);
}

int32_t tvlm_semihost_close(int32_t fd)
{
    uint32_t block[1] = {(uint32_t)fd};
    return call(SYS_CLOSE, block);
}

int32_t tvlm_semihost_read(int32_t fd, void *buf, uint32_t len)
{
    uint32_t block[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, len};
    return call(SYS_READ, block);
}

int32_t tvlm_semihost_write(int32_t fd, const void *buf, uint32_t len)
{
    uint32_t block[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, len};
    return call(SYS_WRITE, block);
}

int32_t tvlm_semihost_seek(int32_t fd, uint32_t pos)
{
    uint32_t block[2] = {(uint32_t)fd, pos};
    return call(SYS_SEEK, block);
}
