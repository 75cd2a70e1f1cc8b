// A swap (dup3 of a new socket onto the program's descriptor number) replaces the open file
// behind the number; epoll registers files, so the program's registrations of the old one are
// gone. Programs such as nginx register a socket before connect(), so the shim records the
// registrations of sockets it may still swap (MZ_FD_WATCH) and makes them again after a swap.
#include "internal.h"

#include <errno.h>
#include <pthread.h>

#define RECORDS 1024

struct record {
    int fd, epfd;
    struct epoll_event ev;
    bool used;
};

static struct record records[RECORDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork(void) { pthread_mutex_unlock(&lock); }
__attribute__((constructor)) static void register_fork_handlers(void) {
    pthread_atfork(before_fork, after_fork, after_fork);
}

// A record counts only while its descriptor has MZ_FD_HAS_EPOLL: close() and connect() clear
// the flag without taking the lock, which retires the descriptor's records at once.
static bool live(const struct record *r) { return r->used && (mz_fd_flags(r->fd) & MZ_FD_HAS_EPOLL); }

static struct record *find(int epfd, int fd) {
    for (size_t i = 0; i < RECORDS; i++)
        if (live(&records[i]) && records[i].fd == fd && records[i].epfd == epfd) return &records[i];
    return NULL;
}

static void note(int epfd, int op, int fd, const struct epoll_event *ev) {
    pthread_mutex_lock(&lock);
    if (!(mz_fd_flags(fd) & MZ_FD_HAS_EPOLL)) {
        // Records left by an earlier socket with this number must not come back to life.
        for (size_t i = 0; i < RECORDS; i++)
            if (records[i].used && records[i].fd == fd) records[i].used = false;
    }
    struct record *r = find(epfd, fd);
    if (op == EPOLL_CTL_DEL) {
        if (r) r->used = false;
    } else if (ev) {
        for (size_t i = 0; !r && i < RECORDS; i++)
            if (!live(&records[i])) r = &records[i];
        if (r) {
            *r = (struct record){ .fd = fd, .epfd = epfd, .ev = *ev, .used = true };
            mz_fd_set(fd, MZ_FD_HAS_EPOLL);
        } else {
            // Better a TCP connection than one the program never hears from again.
            mz_fd_set(fd, MZ_FD_UNSWAPPABLE);
        }
    }
    pthread_mutex_unlock(&lock);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    mz_init();
    int rc = mz_real.epoll_ctl(epfd, op, fd, ev);
    if (rc == 0 && (mz_fd_flags(fd) & MZ_FD_WATCH)) {
        int saved = errno;
        note(epfd, op, fd, ev);
        errno = saved;
    }
    return rc;
}

// Removes fd's registrations from their sets while fd still names the old file. Without this,
// a copy of the old file kept by another process (fork) would stay registered under the same
// number and data, and the set would report for a socket the program no longer uses.
void mz_epoll_detach(int fd) {
    if (!(mz_fd_flags(fd) & MZ_FD_HAS_EPOLL)) return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < RECORDS; i++)
        if (live(&records[i]) && records[i].fd == fd) mz_real.epoll_ctl(records[i].epfd, EPOLL_CTL_DEL, fd, NULL);
    pthread_mutex_unlock(&lock);
}

bool mz_epoll_replay(int fd) {
    if (!(mz_fd_flags(fd) & MZ_FD_HAS_EPOLL)) return true;
    bool ok = true;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < RECORDS; i++) {
        struct record *r = &records[i];
        if (!live(r) || r->fd != fd) continue;
        struct epoll_event ev = r->ev;
        if (mz_real.epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            ok = false;
            mz_log("fd %d: its epoll registration in %d could not be made again: %s", fd, r->epfd, mz_errno_name(errno));
        } else if (mz_cfg.debug) {
            mz_log("fd %d: epoll registration in %d (events 0x%x) made again on the new socket", fd, r->epfd, ev.events);
        }
    }
    pthread_mutex_unlock(&lock);
    return ok;
}
