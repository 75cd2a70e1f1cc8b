// setsockopt/getsockopt on sockets the shim made MPTCP. MPTCP (Linux 6.18) refuses options
// that plain TCP accepts; a program that sets one would fail where it works without the shim.
// Each refused option has a policy (docs/mptcpize.md, "Socket options"):
//   hint      tuning MPTCP lacks: success is reported, the value remembered for getsockopt;
//   needs TCP correctness or security: a fresh socket is turned back into TCP and the option
//             applied for real; later on, the kernel's error. Never dropped silently.
#include "internal.h"

#include <errno.h>
#include <linux/filter.h>
#include <netinet/tcp.h>
#include <stddef.h>

#ifndef TCP_AO_ADD_KEY
#define TCP_AO_ADD_KEY 38
#define TCP_AO_DEL_KEY 39
#define TCP_AO_INFO 40
#endif
#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif
#ifndef TCP_TX_DELAY
#define TCP_TX_DELAY 37
#endif

struct opt_rule {
    int level, name;
    enum mz_opt_policy policy;
    const char *label;
};

#define HINT(l, n) { l, n, MZ_OPT_HINT, #n }
#define NEEDS_TCP(l, n) { l, n, MZ_OPT_NEEDS_TCP, #n }
static const struct opt_rule rules[] = {
    // Timers and ACK/window tuning: the subflows use their own defaults; nothing the program
    // relies on for correctness (a dead peer is still detected, only later).
    HINT(IPPROTO_TCP, TCP_USER_TIMEOUT), HINT(IPPROTO_TCP, TCP_QUICKACK), HINT(IPPROTO_TCP, TCP_SYNCNT),
    HINT(IPPROTO_TCP, TCP_WINDOW_CLAMP), HINT(IPPROTO_TCP, TCP_LINGER2), HINT(IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS),
    HINT(IPPROTO_TCP, TCP_THIN_DUPACK), HINT(IPPROTO_TCP, TCP_TX_DELAY), HINT(SOL_SOCKET, SO_MAX_PACING_RATE),
    // Authentication, TLS offload and filters: dropping them would accept what the program refuses.
    NEEDS_TCP(IPPROTO_TCP, TCP_MD5SIG), NEEDS_TCP(IPPROTO_TCP, TCP_MD5SIG_EXT), NEEDS_TCP(IPPROTO_TCP, TCP_AO_ADD_KEY),
    NEEDS_TCP(IPPROTO_TCP, TCP_AO_DEL_KEY), NEEDS_TCP(IPPROTO_TCP, TCP_AO_INFO), NEEDS_TCP(IPPROTO_TCP, TCP_ULP),
    NEEDS_TCP(SOL_SOCKET, SO_ATTACH_FILTER), NEEDS_TCP(SOL_SOCKET, SO_ATTACH_BPF),
    NEEDS_TCP(SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF), NEEDS_TCP(SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF),
    // Features the program then uses: MSG_ZEROCOPY completions, TCP_SAVED_SYN, PMTU behaviour.
    NEEDS_TCP(SOL_SOCKET, SO_ZEROCOPY), NEEDS_TCP(IPPROTO_TCP, TCP_SAVE_SYN),
    NEEDS_TCP(IPPROTO_IP, IP_MTU_DISCOVER), NEEDS_TCP(IPPROTO_IPV6, IPV6_MTU_DISCOVER),
};

enum mz_opt_policy mz_opt_policy(int level, int name, const char **label) {
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (rules[i].level == level && rules[i].name == name) {
            if (label) *label = rules[i].label;
            return rules[i].policy;
        }
    }
    return MZ_OPT_PASS;
}

// Options whose loss would weaken the program's security: once set on a TCP socket, the
// scoped mode never swaps it for MPTCP.
static bool pins_tcp(int level, int name) {
    return mz_opt_policy(level, name, NULL) == MZ_OPT_NEEDS_TCP;
}

static bool is_refusal(int err) { return err == ENOPROTOOPT || err == EOPNOTSUPP; }

// An MPTCP socket the program did not ask for as such.
static bool shim_mptcp(int fd) {
    if (mz_fd_flags(fd) & MZ_FD_NATIVE) return false;
    int proto;
    socklen_t len = sizeof proto;
    return mz_real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == MZ_IPPROTO_MPTCP;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
    mz_init();
    int rc = mz_real.setsockopt(fd, level, name, val, len);
    if (rc == 0) {
        if ((mz_fd_flags(fd) & MZ_FD_WATCH) && pins_tcp(level, name)) mz_fd_set(fd, MZ_FD_PINNED_TCP);
        return 0;
    }
    int err = errno;
    if (mz_cfg.mode == MZ_OFF || !is_refusal(err) || !shim_mptcp(fd)) {
        errno = err;
        return rc;
    }
    const char *label = "option";
    switch (mz_opt_policy(level, name, &label)) {
    case MZ_OPT_HINT:
        if (mz_values_remember(fd, level, name, val, len)) {
            if (mz_cfg.debug) mz_log("fd %d: %s is not available on MPTCP; reported as set, not applied", fd, label);
            return 0;
        }
        break;
    case MZ_OPT_NEEDS_TCP: {
        int family, protocol;
        const char *why = "the socket is already connecting or listening";
        if (mz_is_fresh_stream(fd, &family, &protocol)
            && (why = mz_swap_socket(fd, family, MZ_IPPROTO_MPTCP, IPPROTO_TCP)) == NULL) {
            rc = mz_real.setsockopt(fd, level, name, val, len);
            int set_err = errno;
            mz_fd_set(fd, MZ_FD_PINNED_TCP);
            if (mz_cfg.debug) mz_log("fd %d: %s needs TCP: the socket is plain TCP again", fd, label);
            errno = set_err;
            return rc;
        }
        // Said even without debug: the program is about to get an error it would not get without us.
        mz_log("fd %d: %s is refused on MPTCP and the socket cannot become TCP again (%s)", fd, label, why);
        break;
    }
    case MZ_OPT_PASS:
        break;
    }
    errno = err;
    return rc;
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len) {
    mz_init();
    // A remembered hint wins even where the kernel can answer (SO_MAX_PACING_RATE is readable
    // on MPTCP): the program reads back what it set, as on TCP.
    if ((mz_fd_flags(fd) & MZ_FD_HAS_VALUES) && mz_values_lookup(fd, level, name, val, len)) return 0;
    int rc = mz_real.getsockopt(fd, level, name, val, len);
    if (rc == 0 || !is_refusal(errno)) return rc;
    int err = errno;
    // A hint never set here: what plain TCP would answer, read from a throwaway TCP socket.
    if (mz_cfg.mode != MZ_OFF && mz_opt_policy(level, name, NULL) == MZ_OPT_HINT && shim_mptcp(fd)) {
        int family;
        socklen_t flen = sizeof family;
        if (mz_real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &flen) == 0) {
            int tcp = mz_real.socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
            if (tcp >= 0) {
                rc = mz_real.getsockopt(tcp, level, name, val, len);
                err = errno;
                mz_real.close(tcp);
            }
        }
    }
    errno = err;
    return rc;
}
