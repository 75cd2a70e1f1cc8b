// Debug output: formatted on the stack and written with one write(2), so lines from
// concurrent threads do not interleave and nothing is allocated.
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void mz_log(const char *fmt, ...) {
    int saved = errno;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "mptcpize[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
    errno = saved;
}

const char *mz_family_name(int family) {
    switch (family) {
    case AF_INET: return "AF_INET";
    case AF_INET6: return "AF_INET6";
    default: return "AF_?";
    }
}

const char *mz_errno_name(int err) {
    // strerrordesc_np returns a static, untranslated string: no locale lookup, no allocation.
    const char *s = strerrordesc_np(err);
    return s ? s : "unknown error";
}
