#ifndef CNETLINUX_H
#define CNETLINUX_H
// Linux socket interfaces that Swift's Glibc module leaves out: splice(2) and
// pipe sizing need _GNU_SOURCE, and the MPTCP / netfilter constants live in
// uapi headers that clash with <netinet/*> when both are imported.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/mptcp.h>

#define CNET_IPPROTO_MPTCP        262
#define CNET_SOL_MPTCP            284
#define CNET_MPTCP_INFO           1
#define CNET_MPTCP_TCPINFO        2
#define CNET_MPTCP_SUBFLOW_ADDRS  3
#define CNET_MPTCP_FULL_INFO      4
#define CNET_TCP_IS_MPTCP         43  /* Linux 6.7+: 1 when the socket runs MPTCP, 0 after fallback */
#define CNET_TCP_FASTOPEN_CONNECT 30
#define CNET_IP_BIND_ADDRESS_NO_PORT 24  /* bind() leaves the port to connect(): binds do not use up ports */
#define CNET_TCP_FASTOPEN         23
#define CNET_SO_ORIGINAL_DST      80  /* same value for IPv4 and IP6T_SO_ORIGINAL_DST */
#define CNET_IP_TRANSPARENT       19
#define CNET_IPV6_TRANSPARENT     75
#define CNET_SPLICE_F_MOVE        1
#define CNET_SPLICE_F_NONBLOCK    2
#define CNET_MPTCP_INFO_FLAG_FALLBACK 1

/// splice(2) between two descriptors without offsets (sockets and pipes).
ssize_t cnet_splice(int fd_in, int fd_out, size_t len, unsigned int flags);
/// ioctl(FIONREAD): bytes waiting to be read on a socket, or -1 (ioctl is variadic: Swift cannot call it).
int cnet_bytes_readable(int fd);
/// ioctl(SIOCOUTQ): bytes written to a socket and not yet acknowledged by its peer, or -1
/// (MPTCP answers from Linux 6.4).
int cnet_bytes_unsent(int fd);
/// Installs a handler that only records `sig` (1-31): a signal the process blocks everywhere
/// for sigwait, should some thread not block it (one a library started), is recorded for
/// cnet_take_recorded_signals instead of taking the default action (SIGHUP would end the
/// process). Returns sigaction's result.
int cnet_record_signal(int sig);
/// The signals recorded since the last call, a bit per signal number; clears them.
unsigned cnet_take_recorded_signals(void);
/// fcntl(F_SETPIPE_SZ); returns the size the kernel granted or -1.
int cnet_set_pipe_size(int fd, int size);
/// fcntl(F_GETPIPE_SZ).
int cnet_get_pipe_size(int fd);
/// pipe2 with O_NONBLOCK | O_CLOEXEC.
int cnet_pipe_nonblocking(int fds[2]);
/// eventfd(0, EFD_CLOEXEC): the wake-up channel from the control thread to a worker ring.
int cnet_eventfd(void);
/// pthread_tryjoin_np: 0 when the thread has exited and was joined.
int cnet_thread_tryjoin(unsigned long thread);

// Datagram engine (datagram.c). Negative returns are -errno.
/// A TPROXY UDP listener: transparent, reporting each datagram's original destination.
int cnet_udp_listener(const struct sockaddr *address, socklen_t length);
/// recvmsg(MSG_DONTWAIT) with the sender and the original destination (family 0 if the
/// datagram was not intercepted); -EMSGSIZE for a truncated datagram.
ssize_t cnet_udp_receive(int fd, void *buffer, size_t length,
                         struct sockaddr_storage *source, struct sockaddr_storage *original);
/// A connected UDP socket to `peer`, bound first (transparently) to `local` if given.
int cnet_udp_flow(const struct sockaddr *local, socklen_t local_length,
                  const struct sockaddr *peer, socklen_t peer_length);
#define CNET_EPOLLIN  0x001u
#define CNET_EPOLLOUT 0x004u
#define CNET_EPOLLERR 0x008u
#define CNET_EPOLLHUP 0x010u
#define CNET_EPOLL_CTL_ADD 1
#define CNET_EPOLL_CTL_DEL 2
#define CNET_EPOLL_CTL_MOD 3
int cnet_epoll_create(void);
int cnet_epoll_control(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait into two plain arrays (at most 256 entries).
int cnet_epoll_wait(int epfd, uint32_t *events, uint64_t *data, int max, int timeout_ms);
#endif
