// UDP interception and flow sockets for the datagram engine (Sources/RelayCore/Datagram*),
// and epoll without its packed struct (Swift imports epoll_event's layout unreliably).
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "CNetLinux.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR 20
#endif
#ifndef IPV6_RECVORIGDSTADDR
#define IPV6_RECVORIGDSTADDR 74
#endif

static int set_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

int cnet_udp_listener(const struct sockaddr *address, socklen_t length) {
    int family = address->sa_family;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int ok = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) == 0;
    if (ok && family == AF_INET6) {
        // Dual stack: a [::] listener also receives the IPv4 TPROXY traffic, with the
        // IPv4 original destination in an IP_ORIGDSTADDR message.
        set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
        ok = set_int(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1) == 0
            && set_int(fd, IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, 1) == 0;
        set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1);
        set_int(fd, IPPROTO_IP, IP_RECVORIGDSTADDR, 1);
    } else if (ok) {
        ok = set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1) == 0
            && set_int(fd, IPPROTO_IP, IP_RECVORIGDSTADDR, 1) == 0;
    }
    if (ok) ok = bind(fd, address, length) == 0;
    if (!ok) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

ssize_t cnet_udp_receive(int fd, void *buffer, size_t length,
                         struct sockaddr_storage *source, struct sockaddr_storage *original) {
    char control[256];
    struct iovec iov = { .iov_base = buffer, .iov_len = length };
    struct msghdr msg = {
        .msg_name = source, .msg_namelen = sizeof *source,
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control, .msg_controllen = sizeof control,
    };
    memset(original, 0, sizeof *original);
    ssize_t n;
    do { n = recvmsg(fd, &msg, MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if (msg.msg_flags & MSG_TRUNC) return -EMSGSIZE;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_ORIGDSTADDR)
            memcpy(original, CMSG_DATA(c), sizeof(struct sockaddr_in));
        else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR)
            memcpy(original, CMSG_DATA(c), sizeof(struct sockaddr_in6));
    }
    return n;
}

int cnet_udp_flow(const struct sockaddr *local, socklen_t local_length,
                  const struct sockaddr *peer, socklen_t peer_length) {
    int fd = socket(peer->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int ok = 1;
    if (local) {
        // The LAN client's peer address is not ours: answering from it takes a transparent
        // socket. Several clients may talk to one destination: each flow binds it again.
        ok = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) == 0
            && (local->sa_family == AF_INET6
                ? set_int(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
                : set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1)) == 0
            && bind(fd, local, local_length) == 0;
    }
    if (ok) ok = connect(fd, peer, peer_length) == 0;
    if (!ok) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int cnet_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cnet_epoll_control(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event e = { .events = events, .data.u64 = data };
    return epoll_ctl(epfd, op, fd, &e) == 0 ? 0 : -errno;
}

int cnet_epoll_wait(int epfd, uint32_t *events, uint64_t *data, int max, int timeout_ms) {
    struct epoll_event list[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, list, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        events[i] = list[i].events;
        data[i] = list[i].data.u64;
    }
    return n;
}
