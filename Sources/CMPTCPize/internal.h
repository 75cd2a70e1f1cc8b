// Shared between the shim's translation units; every symbol here is hidden so that the
// library exports nothing but the interposed libc functions.
#ifndef MPTCPIZE_INTERNAL_H
#define MPTCPIZE_INTERNAL_H

#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
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

// Lazy mode: if selected, replace the plain TCP socket at fd with an MPTCP one carrying the same options,
// flags and local address. Leaves fd untouched (still TCP) if anything refuses. Keeps errno.
HIDDEN void mz_convert_fd(int fd, const char *when, unsigned port, bool selected);

#endif
