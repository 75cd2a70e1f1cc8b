// Shared between the shim's translation units; every symbol here is hidden so that the
// library exports nothing but the interposed libc functions.
#ifndef MPTCPIZE_INTERNAL_H
#define MPTCPIZE_INTERNAL_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "include/mptcpize.h"

// Older headers lack it; the value is fixed by the kernel ABI.
#define MZ_IPPROTO_MPTCP 262

#define HIDDEN __attribute__((visibility("hidden")))

enum mz_mode {
    MZ_OFF,    // configuration was invalid: pass everything through untouched
    MZ_EAGER,  // classic behaviour: convert at socket()
    MZ_LAZY,   // scoped: create TCP, convert at connect()/listen() when the scope matches
};

struct mz_config {
    enum mz_mode mode;
    bool debug;
    bool at_connect;   // lazy mode: convert sockets that connect
    bool at_listen;    // lazy mode: convert sockets that listen
    bool has_include;  // MPTCPIZE_PORTS was given
    uint8_t include[65536 / 8];
    uint8_t exclude[65536 / 8];
};

// The real libc entry points, resolved once with dlsym(RTLD_NEXT).
struct mz_real {
    int (*socket)(int, int, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*close)(int);
    int (*epoll_ctl)(int, int, int, struct epoll_event *);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*fcntl64)(int, int, ...);
};

HIDDEN extern struct mz_config mz_cfg;
HIDDEN extern struct mz_real mz_real;

// Resolves the real functions and reads the environment; idempotent and cheap once done.
HIDDEN void mz_init(void);

// Fills cfg from the MPTCPIZE_* variables; on a bad value writes why into err and returns false.
HIDDEN bool mz_parse_config(struct mz_config *cfg, char *err, size_t errlen);

HIDDEN bool mz_port_selected(const struct mz_config *cfg, unsigned port);

// stderr line prefixed with "mptcpize[pid]: "; keeps errno; no allocation.
HIDDEN void mz_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
HIDDEN const char *mz_family_name(int family);
HIDDEN const char *mz_errno_name(int err);

// Per-descriptor facts (fdstate.c). Descriptors at or above MZ_FD_LIMIT are not tracked: they
// get no option emulation and are never swapped (their epoll registrations would be unknown).
#define MZ_FD_LIMIT (1 << 20)
enum {
    MZ_FD_NATIVE = 1 << 0,      // the program itself asked for IPPROTO_MPTCP: its errors are its own
    MZ_FD_WATCH = 1 << 1,       // inet stream socket from socket(), not yet connecting or listening
    MZ_FD_PINNED_TCP = 1 << 2,  // a security option is in force on it as TCP: never swap to MPTCP
    MZ_FD_HAS_VALUES = 1 << 3,  // emulated option values are remembered for it (optvalues.c)
    MZ_FD_HAS_EPOLL = 1 << 4,   // epoll registrations are recorded for it (epoll.c)
    MZ_FD_UNSWAPPABLE = 1 << 5, // more registrations than the record holds: a swap would lose some
    MZ_FD_SHARED = 1 << 6,      // another descriptor (dup) or process (fork) holds the same socket:
                                // a swap repoints one number and leaves the others on the old socket
};
// Marks every watched descriptor shared (fork: the child holds them all too).
HIDDEN void mz_fd_mark_watched_shared(void);
HIDDEN unsigned mz_fd_flags(int fd);
HIDDEN void mz_fd_set(int fd, unsigned flags);    // adds flags
HIDDEN void mz_fd_clear(int fd, unsigned flags);  // removes flags
// Forgets everything about fd (closed, or a new socket took the number). Lock-free.
HIDDEN void mz_fd_forget(int fd);

// Socket option policy (sockopt.c): what to do when MPTCP refuses an option TCP accepts.
enum mz_opt_policy {
    MZ_OPT_PASS,      // unknown here: the program gets the kernel's answer
    MZ_OPT_HINT,      // a tuning hint MPTCP lacks: report success, remember the value
    MZ_OPT_NEEDS_TCP, // matters for correctness or security: turn a fresh socket back into TCP
};
HIDDEN enum mz_opt_policy mz_opt_policy(int level, int name, const char **label);

// Remembered values of emulated hints (optvalues.c).
HIDDEN bool mz_values_remember(int fd, int level, int name, const void *val, socklen_t len);
HIDDEN bool mz_values_lookup(int fd, int level, int name, void *val, socklen_t *len);
// Applies every remembered value of fd to it for real (after a swap back to TCP), then forgets them.
HIDDEN void mz_values_apply(int fd);

// epoll registrations of watched descriptors (epoll.c).
// Takes fd out of the sets it is registered in (before its file is replaced).
HIDDEN void mz_epoll_detach(int fd);
// Registers fd, now a new file, again in every epoll set it was in, with the same events and data.
// Returns false if one could not be made again.
HIDDEN bool mz_epoll_replay(int fd);

// True for a TCP or MPTCP socket of an inet family that has not started connecting or
// listening; family and protocol receive what it is.
HIDDEN bool mz_is_fresh_stream(int fd, int *family, int *protocol);
// Replaces the socket at fd (same number) with a new one of `protocol`, carrying options, flags,
// local address, remembered hints and epoll registrations. NULL on success, else why not (fd untouched).
HIDDEN const char *mz_swap_socket(int fd, int family, int from_protocol, int protocol);

// Lazy mode: if selected, replace the plain TCP socket at fd with an MPTCP one carrying the same options,
// flags and local address. Leaves fd untouched (still TCP) if anything refuses. Keeps errno.
HIDDEN void mz_convert_fd(int fd, const char *when, unsigned port, bool selected);

#endif
