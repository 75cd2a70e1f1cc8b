// Lazy conversion: swap a not-yet-connected plain TCP socket for an MPTCP one on the same
// fd number (dup3), carrying over what the program already set on it. Every refusal along
// the way leaves the original TCP socket in place: the program then runs as without us.
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif
#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif

struct sockopt {
    int level, name;
    const char *label;
    bool halve;  // SO_RCVBUF/SO_SNDBUF read back twice the value that was set
};

#define OPT(l, n) { l, n, #n, false }
// Options a program plausibly sets between socket() and connect()/listen(). Only those whose
// value differs from a fresh TCP socket's are copied, so untouched ones keep MPTCP defaults
// (e.g. buffer autotuning stays on).
static const struct sockopt sockopts[] = {
    OPT(SOL_SOCKET, SO_REUSEADDR), OPT(SOL_SOCKET, SO_REUSEPORT), OPT(SOL_SOCKET, SO_KEEPALIVE),
    OPT(SOL_SOCKET, SO_PRIORITY), OPT(SOL_SOCKET, SO_MARK), OPT(SOL_SOCKET, SO_BINDTOIFINDEX),
    OPT(SOL_SOCKET, SO_LINGER), OPT(SOL_SOCKET, SO_RCVTIMEO), OPT(SOL_SOCKET, SO_SNDTIMEO),
    OPT(SOL_SOCKET, SO_RCVLOWAT), OPT(SOL_SOCKET, SO_OOBINLINE),
    { SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", true }, { SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", true },
    OPT(IPPROTO_IP, IP_TOS), OPT(IPPROTO_IP, IP_TTL), OPT(IPPROTO_IP, IP_FREEBIND),
    OPT(IPPROTO_IP, IP_TRANSPARENT), OPT(IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT),
    OPT(IPPROTO_IP, IP_LOCAL_PORT_RANGE),
    OPT(IPPROTO_IPV6, IPV6_V6ONLY), OPT(IPPROTO_IPV6, IPV6_TCLASS), OPT(IPPROTO_IPV6, IPV6_UNICAST_HOPS),
    OPT(IPPROTO_IPV6, IPV6_FREEBIND), OPT(IPPROTO_IPV6, IPV6_TRANSPARENT),
    OPT(IPPROTO_TCP, TCP_NODELAY), OPT(IPPROTO_TCP, TCP_CORK), OPT(IPPROTO_TCP, TCP_KEEPIDLE),
    OPT(IPPROTO_TCP, TCP_KEEPINTVL), OPT(IPPROTO_TCP, TCP_KEEPCNT), OPT(IPPROTO_TCP, TCP_MAXSEG),
    OPT(IPPROTO_TCP, TCP_DEFER_ACCEPT), OPT(IPPROTO_TCP, TCP_FASTOPEN), OPT(IPPROTO_TCP, TCP_FASTOPEN_CONNECT),
    OPT(IPPROTO_TCP, TCP_USER_TIMEOUT), OPT(IPPROTO_TCP, TCP_SYNCNT), OPT(IPPROTO_TCP, TCP_LINGER2),
    OPT(IPPROTO_TCP, TCP_WINDOW_CLAMP), OPT(IPPROTO_TCP, TCP_NOTSENT_LOWAT), OPT(IPPROTO_TCP, TCP_CONGESTION),
};

static int get_int(int fd, int level, int name, int *out) {
    socklen_t len = sizeof *out;
    return getsockopt(fd, level, name, out, &len);
}

// Copies every option of `from` that differs from `fresh` (a new TCP socket) onto `to`.
// Returns the label of the option MPTCP refused, or NULL when all went over.
static const char *copy_sockopts(int from, int fresh, int to, int family) {
    for (size_t i = 0; i < sizeof sockopts / sizeof sockopts[0]; i++) {
        const struct sockopt *o = &sockopts[i];
        if (o->level == IPPROTO_IPV6 && family != AF_INET6) continue;
        unsigned char cur[64], def[64];
        socklen_t cur_len = sizeof cur, def_len = sizeof def;
        memset(cur, 0, sizeof cur);
        memset(def, 0, sizeof def);
        if (getsockopt(from, o->level, o->name, cur, &cur_len) != 0) continue;  // not on this kernel
        if (getsockopt(fresh, o->level, o->name, def, &def_len) == 0 && def_len == cur_len
            && memcmp(cur, def, cur_len) == 0)
            continue;  // the program left it alone
        if (o->halve && cur_len == sizeof(int)) {
            int v;
            memcpy(&v, cur, sizeof v);
            v /= 2;
            memcpy(cur, &v, sizeof v);
        }
        if (setsockopt(to, o->level, o->name, cur, cur_len) != 0) return o->label;
    }
    return NULL;
}

// A socket that is bound has a non-zero port or a specific address.
static bool is_bound(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return a->sin_port != 0 || a->sin_addr.s_addr != htonl(INADDR_ANY);
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        return a->sin6_port != 0 || !IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
    }
    return false;
}

// Binds `to` to the address `from` holds. Both get SO_REUSEADDR for the moment of the bind:
// Linux lets two non-listening sockets share an address then. `to` gets the program's value
// back afterwards; `from` is closed right after anyway.
static bool rebind(int from, int to, const struct sockaddr_storage *ss, socklen_t len) {
    int one = 1, orig_from = 0, orig_to = 0;
    if (get_int(from, SOL_SOCKET, SO_REUSEADDR, &orig_from) != 0) return false;
    if (get_int(to, SOL_SOCKET, SO_REUSEADDR, &orig_to) != 0) return false;
    if (setsockopt(from, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return false;
    bool ok = setsockopt(to, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0
           && bind(to, (const struct sockaddr *)ss, len) == 0
           && setsockopt(to, SOL_SOCKET, SO_REUSEADDR, &orig_to, sizeof orig_to) == 0;
    if (!ok) setsockopt(from, SOL_SOCKET, SO_REUSEADDR, &orig_from, sizeof orig_from);
    return ok;
}

// True when fd is a plain TCP socket of an inet family that has not started connecting or
// listening yet; family receives its address family.
static bool is_fresh_tcp(int fd, int *family) {
    int proto, type;
    unsigned char state;
    socklen_t len = sizeof state;
    if (get_int(fd, SOL_SOCKET, SO_PROTOCOL, &proto) != 0 || proto != IPPROTO_TCP) return false;
    if (get_int(fd, SOL_SOCKET, SO_TYPE, &type) != 0 || type != SOCK_STREAM) return false;
    if (get_int(fd, SOL_SOCKET, SO_DOMAIN, family) != 0) return false;
    if (*family != AF_INET && *family != AF_INET6) return false;
    // tcpi_state is the first byte of struct tcp_info; TCP_CLOSE (7) means not yet in use.
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &state, &len) != 0 || len < 1) return false;
    return state == TCP_CLOSE;
}

static const char *swap_in_mptcp(int fd, int family) {
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0) return "fcntl failed";
    int type = SOCK_STREAM | ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0) | ((fdfl & FD_CLOEXEC) ? SOCK_CLOEXEC : 0);

    int nfd = mz_real.socket(family, type, MZ_IPPROTO_MPTCP);
    if (nfd < 0) return mz_errno_name(errno);
    int fresh = mz_real.socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fresh < 0) {
        close(nfd);
        return mz_errno_name(errno);
    }
    const char *why = copy_sockopts(fd, fresh, nfd, family);
    close(fresh);
    if (why) {
        close(nfd);
        return why;
    }
    // O_ASYNC and its owner, should the program use SIGIO.
    if ((fl & O_ASYNC) && (fcntl(nfd, F_SETOWN, fcntl(fd, F_GETOWN)) != 0 || fcntl(nfd, F_SETFL, fl) != 0)) {
        close(nfd);
        return "O_ASYNC";
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        close(nfd);
        return mz_errno_name(errno);
    }
    if (is_bound(&ss) && !rebind(fd, nfd, &ss, len)) {
        close(nfd);
        return "the local address could not be taken over";
    }
    // Atomically points fd at the MPTCP socket; the TCP one is released with its last reference.
    int rc = dup3(nfd, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);
    int dup_err = errno;
    close(nfd);
    return rc < 0 ? mz_errno_name(dup_err) : NULL;
}

void mz_convert_fd(int fd, const char *when, unsigned port, bool selected) {
    int saved = errno;
    int family;
    if (!is_fresh_tcp(fd, &family)) {
        errno = saved;
        return;
    }
    if (!selected) {
        if (mz_cfg.debug) mz_log("fd %d: %s port %u is outside the scope, kept TCP", fd, when, port);
    } else {
        const char *why = swap_in_mptcp(fd, family);
        if (mz_cfg.debug) {
            if (why)
                mz_log("fd %d: %s port %u: MPTCP refused (%s), fell back to TCP", fd, when, port, why);
            else
                mz_log("fd %d: %s port %u: %s stream socket is MPTCP", fd, when, port, mz_family_name(family));
        }
    }
    errno = saved;
}
