// The interposed libc entry points. Default (eager) mode does what the classic mptcpize
// does, at socket() time, but falls back to the socket the program asked for whenever
// the kernel refuses MPTCP. Scoped (lazy) mode decides at connect()/listen().
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

struct mz_config mz_cfg;
struct mz_real mz_real;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void) {
    int saved = errno;
    mz_real.socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    mz_real.connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    mz_real.listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    mz_real.sendto = (ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))
        dlsym(RTLD_NEXT, "sendto");
    mz_real.sendmsg = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    mz_real.setsockopt = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
    mz_real.getsockopt = (int (*)(int, int, int, void *, socklen_t *))dlsym(RTLD_NEXT, "getsockopt");
    mz_real.close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    mz_real.epoll_ctl = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
    mz_real.accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    mz_real.accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    mz_real.dup = (int (*)(int))dlsym(RTLD_NEXT, "dup");
    mz_real.dup2 = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    mz_real.dup3 = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
    mz_real.fcntl = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl");
    mz_real.fcntl64 = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl64");

    char err[256];
    if (!mz_parse_config(&mz_cfg, err, sizeof err)) {
        // A typo must not convert more than the admin asked for: convert nothing, say so.
        mz_cfg.mode = MZ_OFF;
        mz_log("ignoring the configuration, no socket will be converted: %s", err);
    }
    errno = saved;
}

// Runs while the process is still single-threaded, so the once-flag is settled before any
// thread or fork can race on it; the pthread_once calls below then only read it.
__attribute__((constructor)) static void mz_constructor(void) {
    pthread_once(&init_once, init);
    // After fork both processes hold every socket that existed: none may be swapped since.
    pthread_atfork(NULL, mz_fd_mark_watched_shared, mz_fd_mark_watched_shared);
}

void mz_init(void) { pthread_once(&init_once, init); }

static bool is_tcp_request(int domain, int type, int protocol) {
    return (domain == AF_INET || domain == AF_INET6)
        && (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM
        && (protocol == 0 || protocol == IPPROTO_TCP);
}

// A new socket at fd: whatever the number held before is forgotten; one the shim may still
// swap (scoped mode, or back to TCP for an option) has its epoll registrations recorded.
static int track_new_socket(int fd, unsigned flags) {
    if (fd >= 0) {
        mz_fd_forget(fd);
        mz_fd_set(fd, flags);
    }
    return fd;
}

int socket(int domain, int type, int protocol) {
    mz_init();
    if (!mz_real.socket) {
        errno = ENOSYS;
        return -1;
    }
    if (mz_cfg.mode == MZ_OFF) return mz_real.socket(domain, type, protocol);
    if (!is_tcp_request(domain, type, protocol)) {
        bool native = (domain == AF_INET || domain == AF_INET6) && protocol == MZ_IPPROTO_MPTCP;
        return track_new_socket(mz_real.socket(domain, type, protocol), native ? MZ_FD_NATIVE : 0);
    }
    if (mz_cfg.mode != MZ_EAGER) return track_new_socket(mz_real.socket(domain, type, protocol), MZ_FD_WATCH);

    int saved = errno;
    int fd = mz_real.socket(domain, type, MZ_IPPROTO_MPTCP);
    if (fd >= 0) {
        if (mz_cfg.debug) mz_log("fd %d: %s stream socket is MPTCP", fd, mz_family_name(domain));
        return track_new_socket(fd, MZ_FD_WATCH);
    }
    // Whatever the reason (no MPTCP in the kernel, net.mptcp.enabled=0, seccomp, EMFILE...),
    // the program gets exactly what it would get without us: the outcome of its own call.
    int why = errno;
    errno = saved;
    fd = mz_real.socket(domain, type, protocol);
    if (mz_cfg.debug) {
        if (fd >= 0)
            mz_log("fd %d: MPTCP refused (%s), fell back to TCP", fd, mz_errno_name(why));
        else
            mz_log("MPTCP refused (%s), and TCP too (%s)", mz_errno_name(why), mz_errno_name(errno));
    }
    return track_new_socket(fd, 0);
}

// Async-signal-safe like the real one: one atomic store, no lock.
int close(int fd) {
    mz_init();
    if (mz_fd_flags(fd)) mz_fd_forget(fd);
    return mz_real.close(fd);
}

// An accepted socket may take a number whose previous socket was closed behind close()'s back
// (by libc itself, or a raw syscall): what was known about that number must not apply to it.
int accept(int fd, struct sockaddr *sa, socklen_t *len) {
    mz_init();
    int rc = mz_real.accept(fd, sa, len);
    if (rc >= 0 && mz_fd_flags(rc)) mz_fd_forget(rc);
    return rc;
}

int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags) {
    mz_init();
    int rc = mz_real.accept4(fd, sa, len, flags);
    if (rc >= 0 && mz_fd_flags(rc)) mz_fd_forget(rc);
    return rc;
}

// Once a socket connects or listens, it is never swapped again: stop recording its epoll use.
static void settled(int fd) {
    if (mz_fd_flags(fd) & MZ_FD_WATCH) {
        mz_fd_clear(fd, MZ_FD_WATCH | MZ_FD_PINNED_TCP | MZ_FD_UNSWAPPABLE | MZ_FD_HAS_EPOLL);
    }
}

// Port of an AF_INET/AF_INET6 address, or -1 for anything else.
static int inet_port(const struct sockaddr *sa, socklen_t len) {
    if (!sa) return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return -1;
}

static void consider_connect(int fd, const struct sockaddr *sa, socklen_t len, const char *when) {
    if (mz_cfg.mode != MZ_LAZY || !mz_cfg.at_connect) return;
    int port = inet_port(sa, len);
    if (port < 0) return;
    mz_convert_fd(fd, when, (unsigned)port, mz_port_selected(&mz_cfg, (unsigned)port));
}

int connect(int fd, const struct sockaddr *sa, socklen_t len) {
    mz_init();
    consider_connect(fd, sa, len, "connect");
    settled(fd);
    return mz_real.connect(fd, sa, len);
}

// TCP Fast Open clients connect with sendto/sendmsg(MSG_FASTOPEN) instead of connect().
ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len) {
    mz_init();
    if (flags & MSG_FASTOPEN) {
        consider_connect(fd, sa, len, "sendto(MSG_FASTOPEN)");
        settled(fd);
    }
    return mz_real.sendto(fd, buf, n, flags, sa, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    mz_init();
    if ((flags & MSG_FASTOPEN) && msg) {
        consider_connect(fd, msg->msg_name, msg->msg_namelen, "sendmsg(MSG_FASTOPEN)");
        settled(fd);
    }
    return mz_real.sendmsg(fd, msg, flags);
}

int listen(int fd, int backlog) {
    mz_init();
    if (mz_cfg.mode == MZ_LAZY && mz_cfg.at_listen) {
        int saved = errno;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
            int port = inet_port((struct sockaddr *)&ss, len);
            if (port >= 0) mz_convert_fd(fd, "listen", (unsigned)port, mz_port_selected(&mz_cfg, (unsigned)port));
        }
        errno = saved;
    }
    settled(fd);
    return mz_real.listen(fd, backlog);
}

// A descriptor copied from a watched socket: both numbers name one socket, which a swap (one
// number repointed) would split. Both are marked shared; the copy is otherwise forgotten.
static int copied(int from, int to) {
    if (to < 0) return to;
    if (to != from) mz_fd_forget(to);
    unsigned flags = mz_fd_flags(from);
    if (flags & MZ_FD_WATCH) {
        mz_fd_set(from, MZ_FD_SHARED);
        mz_fd_set(to, (flags & ~(MZ_FD_HAS_VALUES | MZ_FD_HAS_EPOLL)) | MZ_FD_SHARED);
    }
    return to;
}

int dup(int fd) {
    mz_init();
    return copied(fd, mz_real.dup(fd));
}

int dup2(int fd, int to) {
    mz_init();
    return copied(fd, mz_real.dup2(fd, to));
}

int dup3(int fd, int to, int flags) {
    mz_init();
    return copied(fd, mz_real.dup3(fd, to, flags));
}

// fcntl's third argument is an int or a pointer; glibc reads it as one machine word too.
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, unsigned long arg) {
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int rc = real(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) return copied(fd, rc);
    return rc;
}

int fcntl(int fd, int cmd, ...) {
    mz_init();
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return fcntl_common(mz_real.fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    mz_init();
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return fcntl_common(mz_real.fcntl64 ? mz_real.fcntl64 : mz_real.fcntl, fd, cmd, arg);
}
