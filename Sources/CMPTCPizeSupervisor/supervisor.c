// See include/mptcpize_supervisor.h.
#define _GNU_SOURCE
#include "include/mptcpize_supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
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

// Notify on socket(AF_INET or AF_INET6, SOCK_STREAM[|flags], *); allow everything else. The
// protocol is checked by the supervisor (0 and IPPROTO_TCP become MPTCP).
static int install_filter(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 8),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 6),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),  // SOCK_TYPE_MASK
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog prog = { .len = sizeof code / sizeof code[0], .filter = code };
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

// Answers one socket() call: an MPTCP socket installed in the caller, or its own call run as is.
static void answer(int listener) {
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    memset(&req, 0, sizeof req);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) return;  // ENOENT: the caller died
    memset(&resp, 0, sizeof resp);
    resp.id = req.id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;

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
