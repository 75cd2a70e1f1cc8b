// See include/mptcpize_supervisor.h.
#define _GNU_SOURCE
#include "include/mptcpize_supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MZ_IPPROTO_MPTCP 262

static int debug_on;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "mptcpize[supervisor %d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(buf);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

// setsockopt() options MPTCP refuses (see the option policy in docs/mptcpize.md), by level.
static const unsigned tcp_hints[] = { 18, 12, 7, 10, 8, 16, 17, 37 };  // USER_TIMEOUT QUICKACK SYNCNT WINDOW_CLAMP LINGER2 THIN_LINEAR THIN_DUPACK TX_DELAY
static const unsigned tcp_needs_tcp[] = { 14, 32, 38, 39, 40, 31, 27 };  // MD5SIG MD5SIG_EXT AO_ADD_KEY AO_DEL_KEY AO_INFO ULP SAVE_SYN
static const unsigned sol_hints[] = { 47 };                              // SO_MAX_PACING_RATE
static const unsigned sol_needs_tcp[] = { 26, 50, 51, 52, 60 };          // ATTACH_FILTER ATTACH_BPF ATTACH_REUSEPORT_CBPF/EBPF ZEROCOPY
static const unsigned ip_needs_tcp[] = { 10 };                           // IP_MTU_DISCOVER
static const unsigned ipv6_needs_tcp[] = { 23 };                         // IPV6_MTU_DISCOVER

static bool listed(const unsigned *list, size_t n, unsigned v) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == v) return true;
    return false;
}
#define LISTED(list, v) listed(list, sizeof list / sizeof list[0], v)

enum opt_policy { OPT_PASS, OPT_HINT, OPT_NEEDS_TCP };
static enum opt_policy policy(int level, int name) {
    unsigned n = (unsigned)name;
    switch (level) {
    case IPPROTO_TCP: return LISTED(tcp_hints, n) ? OPT_HINT : LISTED(tcp_needs_tcp, n) ? OPT_NEEDS_TCP : OPT_PASS;
    case SOL_SOCKET: return LISTED(sol_hints, n) ? OPT_HINT : LISTED(sol_needs_tcp, n) ? OPT_NEEDS_TCP : OPT_PASS;
    case IPPROTO_IP: return LISTED(ip_needs_tcp, n) ? OPT_NEEDS_TCP : OPT_PASS;
    case IPPROTO_IPV6: return LISTED(ipv6_needs_tcp, n) ? OPT_NEEDS_TCP : OPT_PASS;
    default: return OPT_PASS;
    }
}

struct filter_builder {
    struct sock_filter code[128];
    unsigned short n;
};
static void emit(struct filter_builder *b, struct sock_filter insn) { b->code[b->n++] = insn; }
#define LD_ARG(i) (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(v) (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, v)

// "if args[1] == level and args[2] is one of opts: notify", falling through otherwise.
static void emit_level(struct filter_builder *b, unsigned level, const unsigned *a, size_t na, const unsigned *c, size_t nc) {
    emit(b, LD_ARG(1));
    emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, level, 0, (unsigned char)(1 + 2 * (na + nc))));
    emit(b, LD_ARG(2));
    for (size_t i = 0; i < na + nc; i++) {
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, i < na ? a[i] : c[i - na], 0, 1));
        emit(b, RET(SECCOMP_RET_USER_NOTIF));
    }
}
#define LEVEL(b, level, a, c) emit_level(b, level, a, sizeof a / sizeof a[0], c, sizeof c / sizeof c[0])

// Notify on socket(AF_INET or AF_INET6, SOCK_STREAM[|flags], *) and on setsockopt() of the
// options above; allow everything else. The rest is decided by the supervisor.
static int install_filter(void) {
    static const unsigned none[] = { 0 };
    struct filter_builder b = { .n = 0 };
    emit(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    emit(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 8));
    emit(&b, LD_ARG(0));
    emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0));
    emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 4));
    emit(&b, LD_ARG(1));
    emit(&b, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf));  // SOCK_TYPE_MASK
    emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 0, 1));
    emit(&b, RET(SECCOMP_RET_USER_NOTIF));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setsockopt, 1, 0));
    emit(&b, RET(SECCOMP_RET_ALLOW));
    LEVEL(&b, IPPROTO_TCP, tcp_hints, tcp_needs_tcp);
    LEVEL(&b, SOL_SOCKET, sol_hints, sol_needs_tcp);
    emit_level(&b, IPPROTO_IP, none, 0, ip_needs_tcp, 1);
    emit_level(&b, IPPROTO_IPV6, none, 0, ipv6_needs_tcp, 1);
    emit(&b, RET(SECCOMP_RET_ALLOW));
    struct sock_fprog prog = { .len = b.n, .filter = b.code };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static int send_fd(int sock, int fd) {
    char data = 'L';
    struct iovec iov = { .iov_base = &data, .iov_len = 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } c;
    memset(&c, 0, sizeof c);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
    char data;
    struct iovec iov = { .iov_base = &data, .iov_len = 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } c;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf };
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

// The caller's socket `tfd`, duplicated into the supervisor (pidfd_getfd), or -1.
static int caller_fd(int tid, int tfd) {
    int pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
    if (pidfd < 0) pidfd = (int)syscall(SYS_pidfd_open, tid, 0);
    if (pidfd < 0) return -1;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, tfd, 0);
    close(pidfd);
    return fd;
}

// Whether the caller's descriptor tfd has close-on-exec (from /proc/PID/fdinfo).
static bool caller_cloexec(int tid, int tfd) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", tid, tfd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return false;
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n <= 0) return false;
    buf[n] = 0;
    char *flags = strstr(buf, "flags:");
    return flags && (strtoul(flags + 6, NULL, 8) & O_CLOEXEC);
}

// A socket that has not started connecting or listening and holds no local address: one the
// supervisor can replace without losing anything the program set, beyond its options.
static bool fresh_unbound(int fd, int *family) {
    unsigned char state;
    socklen_t len = sizeof state;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &state, &len) != 0 || state != 7 /* TCP_CLOSE */) return false;
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return false;
    *family = ss.ss_family;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        return a->sin_port == 0 && a->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        return a->sin6_port == 0 && IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
    }
    return false;
}

// setsockopt() of an option MPTCP refuses, on an MPTCP socket (the policy of the shim):
// a hint is applied if the kernel takes it and reported as set either way; a needs-TCP option
// on a fresh unbound socket gets a plain TCP socket in its place (ADDFD onto the same number),
// then runs for real. Everything else runs as asked, and the program gets the kernel's answer.
static void answer_setsockopt(int listener, const struct seccomp_notif *req, struct seccomp_notif_resp *resp) {
    int tfd = (int)req->data.args[0], level = (int)req->data.args[1], name = (int)req->data.args[2];
    int fd = caller_fd((int)req->pid, tfd);
    if (fd < 0) return;
    int proto = 0;
    socklen_t plen = sizeof proto;
    bool mptcp = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) == 0 && proto == MZ_IPPROTO_MPTCP;
    enum opt_policy p = mptcp ? policy(level, name) : OPT_PASS;
    if (p == OPT_HINT) {
        unsigned char value[64];
        size_t len = req->data.args[4] < sizeof value ? (size_t)req->data.args[4] : sizeof value;
        struct iovec local = { value, len }, remote = { (void *)(uintptr_t)req->data.args[3], len };
        if (process_vm_readv((pid_t)req->pid, &local, 1, &remote, 1, 0) == (ssize_t)len)
            (void)setsockopt(fd, level, name, value, (socklen_t)len);  // taken if a later kernel knows it
        resp->flags = 0;
        resp->val = 0;
        if (debug_on) say("pid %d: fd %d: option %d/%d is not available on MPTCP; reported as set", (int)req->pid, tfd, level, name);
    } else if (p == OPT_NEEDS_TCP) {
        int family;
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && fresh_unbound(fd, &family)) {
            int tcp = socket(family, SOCK_STREAM | ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0), IPPROTO_TCP);
            if (tcp >= 0) {
                struct seccomp_notif_addfd addfd = {
                    .id = req->id, .flags = SECCOMP_ADDFD_FLAG_SETFD, .srcfd = (unsigned)tcp, .newfd = (unsigned)tfd,
                    .newfd_flags = caller_cloexec((int)req->pid, tfd) ? O_CLOEXEC : 0,
                };
                if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) >= 0 && debug_on)
                    say("pid %d: fd %d: option %d/%d needs TCP: the socket is plain TCP again", (int)req->pid, tfd, level, name);
                close(tcp);
            }
        } else {
            say("pid %d: fd %d: option %d/%d is refused on MPTCP and the socket cannot become TCP again", (int)req->pid, tfd, level, name);
        }
        // CONTINUE: the program's own setsockopt() now runs, on the TCP socket if it was replaced.
    }
    close(fd);
}

// Answers one notification: socket() gets an MPTCP socket installed in the caller, or its own
// call run as is; setsockopt() follows the option policy.
static void answer(int listener) {
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    memset(&req, 0, sizeof req);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) return;  // ENOENT: the caller died
    memset(&resp, 0, sizeof resp);
    resp.id = req.id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    if (req.data.nr == __NR_setsockopt) {
        answer_setsockopt(listener, &req, &resp);
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
        return;
    }

    int domain = (int)req.data.args[0], type = (int)req.data.args[1], protocol = (int)req.data.args[2];
    if (protocol == 0 || protocol == IPPROTO_TCP) {
        // O_NONBLOCK belongs to the open file and travels with it; close-on-exec belongs to the
        // caller's descriptor table and is set by ADDFD.
        int fd = socket(domain, type & ~SOCK_CLOEXEC, MZ_IPPROTO_MPTCP);
        if (fd >= 0) {
            struct seccomp_notif_addfd addfd = {
                .id = req.id, .flags = SECCOMP_ADDFD_FLAG_SEND, .srcfd = (unsigned)fd,
                .newfd_flags = (type & SOCK_CLOEXEC) ? O_CLOEXEC : 0,
            };
            int installed = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
            int why = errno;
            close(fd);
            if (installed >= 0) {
                if (debug_on) say("pid %d: fd %d: %s stream socket is MPTCP", (int)req.pid, installed, domain == AF_INET ? "AF_INET" : "AF_INET6");
                return;
            }
            if (why == ENOENT) return;  // the caller is gone
            // The caller could not take it (its descriptor limit, say): its own call will tell.
            if (debug_on) say("pid %d: MPTCP socket not installed (%s), its own socket() runs", (int)req.pid, strerror(why));
        } else if (debug_on) {
            say("pid %d: MPTCP refused (%s), fell back to TCP", (int)req.pid, strerror(errno));
        }
    }
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static pid_t child_pid;
static void forward(int sig) { if (child_pid > 0) kill(child_pid, sig); }

static int status_of(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int mz_supervise(char *const argv[], int debug, char *err, unsigned long errlen) {
    debug_on = debug;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(pair[0]);
        int listener = install_filter();
        if (listener < 0) {
            int e = errno;
            char msg[200];
            snprintf(msg, sizeof msg, "mptcpize: cannot install the seccomp filter: %s\n", strerror(e));
            ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
            (void)w;
            _exit(126);
        }
        if (send_fd(pair[1], listener) != 0) _exit(126);
        close(listener);
        char ok;
        if (read(pair[1], &ok, 1) != 1) _exit(126);  // the supervisor is ready
        close(pair[1]);
        execvp(argv[0], argv);
        int e = errno;
        char msg[300];
        snprintf(msg, sizeof msg, "mptcpize: cannot run '%s': %s\n", argv[0], strerror(e));
        ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    close(pair[1]);
    child_pid = pid;
    int listener = recv_fd(pair[0]);
    if (listener < 0) {
        close(pair[0]);
        int status;
        waitpid(pid, &status, 0);
        snprintf(err, errlen, "the program's seccomp filter could not be set up (exit status %d)", status_of(status));
        return -1;
    }
    ssize_t w = write(pair[0], "g", 1);
    (void)w;
    close(pair[0]);
    signal(SIGINT, forward);
    signal(SIGTERM, forward);
    signal(SIGHUP, forward);
    signal(SIGQUIT, forward);

    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int exit_status = -1;
    bool keeper = false;
    for (;;) {
        struct pollfd fds[2] = { { .fd = listener, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
        int n = poll(fds, pidfd >= 0 && exit_status < 0 ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents & POLLIN) answer(listener);
        else if (fds[0].revents & (POLLHUP | POLLERR)) break;  // no process uses the filter any more
        if (exit_status < 0 && pidfd >= 0 && (fds[1].revents & POLLIN)) {
            int status;
            if (waitpid(pid, &status, 0) == pid) exit_status = status_of(status);
            struct pollfd hup = { .fd = listener, .events = POLLIN };
            if (poll(&hup, 1, 0) == 1 && (hup.revents & POLLHUP) && !(hup.revents & POLLIN)) break;
            // Descendants still run (a daemon): a copy of the supervisor stays to serve them,
            // and this one returns the program's status as a preloaded run would.
            if (fork() != 0) break;
            keeper = true;
            setsid();
        }
    }
    close(listener);
    if (pidfd >= 0) close(pidfd);
    if (keeper) _exit(0);
    if (exit_status < 0) {
        int status;
        if (waitpid(pid, &status, 0) == pid) exit_status = status_of(status);
    }
    return exit_status < 0 ? 1 : exit_status;
}
