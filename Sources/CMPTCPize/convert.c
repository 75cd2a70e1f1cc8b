// Swapping the socket behind a descriptor number (dup3), carrying over what the program set
// on it. Scoped mode swaps a fresh TCP socket for MPTCP at connect()/listen(); the option
// policy swaps a fresh MPTCP socket back to TCP for an option only TCP has. Every refusal
// along the way leaves the original socket in place.
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
    OPT(IPPROTO_TCP, TCP_QUICKACK), OPT(SOL_SOCKET, SO_MAX_PACING_RATE),
};

static int get_int(int fd, int level, int name, int *out) {
    socklen_t len = sizeof *out;
    return mz_real.getsockopt(fd, level, name, out, &len);
}

struct pending_hint {
    int level, name;
    socklen_t len;
    unsigned char value[64];
};

// Copies every option of `from` that differs from `fresh` (a new socket like `from`) onto `to`.
// A hint that `to` refuses is put in `hints` (remembered once the swap is done). Returns the
// label of an option `to` refused otherwise, or NULL when all went over.
static const char *copy_sockopts(int from, int fresh, int to, int family, struct pending_hint *hints, size_t *nhints) {
    for (size_t i = 0; i < sizeof sockopts / sizeof sockopts[0]; i++) {
        const struct sockopt *o = &sockopts[i];
        if (o->level == IPPROTO_IPV6 && family != AF_INET6) continue;
        unsigned char cur[64], def[64];
        socklen_t cur_len = sizeof cur, def_len = sizeof def;
        memset(cur, 0, sizeof cur);
        memset(def, 0, sizeof def);
        if (mz_real.getsockopt(from, o->level, o->name, cur, &cur_len) != 0) continue;  // not on this kernel
        if (mz_real.getsockopt(fresh, o->level, o->name, def, &def_len) == 0 && def_len == cur_len
            && memcmp(cur, def, cur_len) == 0)
            continue;  // the program left it alone
        if (o->halve && cur_len == sizeof(int)) {
            int v;
            memcpy(&v, cur, sizeof v);
            v /= 2;
            memcpy(cur, &v, sizeof v);
        }
        if (mz_real.setsockopt(to, o->level, o->name, cur, cur_len) == 0) continue;
        if (mz_opt_policy(o->level, o->name, NULL) == MZ_OPT_HINT && *nhints < sizeof sockopts / sizeof sockopts[0]) {
            struct pending_hint *h = &hints[(*nhints)++];
            h->level = o->level;
            h->name = o->name;
            h->len = cur_len;
            memcpy(h->value, cur, cur_len);
            continue;
        }
        return o->label;
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
    if (mz_real.setsockopt(from, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return false;
    bool ok = mz_real.setsockopt(to, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0
           && bind(to, (const struct sockaddr *)ss, len) == 0
           && mz_real.setsockopt(to, SOL_SOCKET, SO_REUSEADDR, &orig_to, sizeof orig_to) == 0;
    if (!ok) mz_real.setsockopt(from, SOL_SOCKET, SO_REUSEADDR, &orig_from, sizeof orig_from);
    return ok;
}

bool mz_is_fresh_stream(int fd, int *family, int *protocol) {
    int type;
    unsigned char state;
    socklen_t len = sizeof state;
    if (get_int(fd, SOL_SOCKET, SO_PROTOCOL, protocol) != 0) return false;
    if (*protocol != IPPROTO_TCP && *protocol != MZ_IPPROTO_MPTCP) return false;
    if (get_int(fd, SOL_SOCKET, SO_TYPE, &type) != 0 || type != SOCK_STREAM) return false;
    if (get_int(fd, SOL_SOCKET, SO_DOMAIN, family) != 0) return false;
    if (*family != AF_INET && *family != AF_INET6) return false;
    // tcpi_state is the first byte of struct tcp_info (MPTCP answers too); TCP_CLOSE (7) means not yet in use.
    if (mz_real.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &state, &len) != 0 || len < 1) return false;
    return state == TCP_CLOSE;
}

const char *mz_swap_socket(int fd, int family, int from_protocol, int protocol) {
    if (mz_fd_flags(fd) & MZ_FD_UNSWAPPABLE) return "more epoll registrations than the shim records";
    // dup3 below repoints this one number: a dup()ed descriptor, or the copy a fork()ed process
    // holds, would stay on the old socket, unconnected. Better all of them TCP and consistent.
    if (mz_fd_flags(fd) & MZ_FD_SHARED) return "another descriptor or process holds this socket (dup/fork)";
    if (fd >= MZ_FD_LIMIT) return "descriptor number too high to track";
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0) return "fcntl failed";
    int type = SOCK_STREAM | ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0) | ((fdfl & FD_CLOEXEC) ? SOCK_CLOEXEC : 0);

    int nfd = mz_real.socket(family, type, protocol);
    if (nfd < 0) return mz_errno_name(errno);
    int fresh = mz_real.socket(family, SOCK_STREAM | SOCK_CLOEXEC, from_protocol);
    if (fresh < 0) {
        mz_real.close(nfd);
        return mz_errno_name(errno);
    }
    struct pending_hint hints[sizeof sockopts / sizeof sockopts[0]];
    size_t nhints = 0;
    const char *why = copy_sockopts(fd, fresh, nfd, family, hints, &nhints);
    mz_real.close(fresh);
    if (why) {
        mz_real.close(nfd);
        return why;
    }
    // O_ASYNC and its owner, should the program use SIGIO.
    if ((fl & O_ASYNC) && (fcntl(nfd, F_SETOWN, fcntl(fd, F_GETOWN)) != 0 || fcntl(nfd, F_SETFL, fl) != 0)) {
        mz_real.close(nfd);
        return "O_ASYNC";
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        mz_real.close(nfd);
        return mz_errno_name(errno);
    }
    if (is_bound(&ss) && !rebind(fd, nfd, &ss, len)) {
        mz_real.close(nfd);
        return "the local address could not be taken over";
    }
    // Atomically points fd at the new socket; the old one is released with its last reference.
    mz_epoll_detach(fd);
    int rc = mz_real.dup3(nfd, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);  // the real one: ours would mark the pair shared
    int dup_err = errno;
    mz_real.close(nfd);
    mz_epoll_replay(fd);  // onto the new socket, or back onto the old one if dup3 failed
    if (rc < 0) return mz_errno_name(dup_err);

    if (protocol == IPPROTO_TCP) {
        mz_values_apply(fd);  // hints reported as set on MPTCP now take effect
    } else {
        for (size_t i = 0; i < nhints; i++) {
            mz_values_remember(fd, hints[i].level, hints[i].name, hints[i].value, hints[i].len);
            if (mz_cfg.debug) {
                const char *label = "option";
                mz_opt_policy(hints[i].level, hints[i].name, &label);
                mz_log("fd %d: %s is not available on MPTCP; kept as set, not applied", fd, label);
            }
        }
    }
    return NULL;
}

void mz_convert_fd(int fd, const char *when, unsigned port, bool selected) {
    int saved = errno;
    int family, protocol;
    if (!mz_is_fresh_stream(fd, &family, &protocol) || protocol != IPPROTO_TCP) {
        errno = saved;
        return;
    }
    if (!selected) {
        if (mz_cfg.debug) mz_log("fd %d: %s port %u is outside the scope, kept TCP", fd, when, port);
    } else if (mz_fd_flags(fd) & MZ_FD_PINNED_TCP) {
        // Its MD5/AO key, TLS offload or filter would not survive the swap: better TCP than open.
        if (mz_cfg.debug) mz_log("fd %d: %s port %u: a security option is set on it, kept TCP", fd, when, port);
    } else {
        const char *why = mz_swap_socket(fd, family, IPPROTO_TCP, MZ_IPPROTO_MPTCP);
        if (mz_cfg.debug) {
            if (why)
                mz_log("fd %d: %s port %u: MPTCP refused (%s), fell back to TCP", fd, when, port, why);
            else
                mz_log("fd %d: %s port %u: %s stream socket is MPTCP", fd, when, port, mz_family_name(family));
        }
    }
    errno = saved;
}
