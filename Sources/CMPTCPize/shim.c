// The interposed libc entry points. Default (eager) mode does what the classic mptcpize
// does, at socket() time, but falls back to the socket the program asked for whenever
// the kernel refuses MPTCP. Scoped (lazy) mode decides at connect()/listen().
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>

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
__attribute__((constructor)) static void mz_constructor(void) { pthread_once(&init_once, init); }

void mz_init(void) { pthread_once(&init_once, init); }

static bool is_tcp_request(int domain, int type, int protocol) {
    return (domain == AF_INET || domain == AF_INET6)
        && (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM
        && (protocol == 0 || protocol == IPPROTO_TCP);
}

int socket(int domain, int type, int protocol) {
    mz_init();
    if (!mz_real.socket) {
        errno = ENOSYS;
        return -1;
    }
    if (mz_cfg.mode != MZ_EAGER || !is_tcp_request(domain, type, protocol))
        return mz_real.socket(domain, type, protocol);

    int saved = errno;
    int fd = mz_real.socket(domain, type, MZ_IPPROTO_MPTCP);
    if (fd >= 0) {
        if (mz_cfg.debug) mz_log("fd %d: %s stream socket is MPTCP", fd, mz_family_name(domain));
        return fd;
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
    return fd;
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
    return mz_real.connect(fd, sa, len);
}

// TCP Fast Open clients connect with sendto/sendmsg(MSG_FASTOPEN) instead of connect().
ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len) {
    mz_init();
    if (flags & MSG_FASTOPEN) consider_connect(fd, sa, len, "sendto(MSG_FASTOPEN)");
    return mz_real.sendto(fd, buf, n, flags, sa, len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    mz_init();
    if ((flags & MSG_FASTOPEN) && msg) consider_connect(fd, msg->msg_name, msg->msg_namelen, "sendmsg(MSG_FASTOPEN)");
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
    return mz_real.listen(fd, backlog);
}
