// One byte of flags per descriptor number. The array is in .bss: pages are only backed once a
// descriptor in their range is used, so a program with a few sockets pays a page or two.
#include "internal.h"

static unsigned char fd_flags[MZ_FD_LIMIT];
// Highest descriptor that ever had flags: bounds the sweep at fork.
static int fd_high = -1;

static bool tracked(int fd) { return fd >= 0 && fd < MZ_FD_LIMIT; }

unsigned mz_fd_flags(int fd) { return tracked(fd) ? __atomic_load_n(&fd_flags[fd], __ATOMIC_ACQUIRE) : 0; }

void mz_fd_set(int fd, unsigned flags) {
    if (!tracked(fd)) return;
    __atomic_fetch_or(&fd_flags[fd], (unsigned char)flags, __ATOMIC_ACQ_REL);
    int high = __atomic_load_n(&fd_high, __ATOMIC_RELAXED);
    while (fd > high && !__atomic_compare_exchange_n(&fd_high, &high, fd, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

// Runs in the fork handlers (parent and child): both processes now hold every socket that
// existed, so none may be swapped any more. One pass over the numbers ever used.
void mz_fd_mark_watched_shared(void) {
    int high = __atomic_load_n(&fd_high, __ATOMIC_RELAXED);
    for (int fd = 0; fd <= high; fd++) {
        if (__atomic_load_n(&fd_flags[fd], __ATOMIC_RELAXED) & MZ_FD_WATCH)
            __atomic_fetch_or(&fd_flags[fd], (unsigned char)MZ_FD_SHARED, __ATOMIC_RELAXED);
    }
}

void mz_fd_clear(int fd, unsigned flags) {
    if (tracked(fd)) __atomic_fetch_and(&fd_flags[fd], (unsigned char)~flags, __ATOMIC_ACQ_REL);
}

// Lock-free, so close() stays async-signal-safe: the tables' entries for fd become invalid
// with the HAS_VALUES / HAS_EPOLL flags, and are purged when fd next gets entries.
void mz_fd_forget(int fd) {
    if (tracked(fd)) __atomic_store_n(&fd_flags[fd], 0, __ATOMIC_RELEASE);
}
