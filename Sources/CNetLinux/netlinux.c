#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include "CNetLinux.h"

ssize_t cnet_splice(int fd_in, int fd_out, size_t len, unsigned int flags) {
    return splice(fd_in, NULL, fd_out, NULL, len, flags);
}

int cnet_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }
int cnet_get_pipe_size(int fd) { return fcntl(fd, F_GETPIPE_SZ); }
int cnet_pipe_nonblocking(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }
int cnet_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }
int cnet_thread_tryjoin(unsigned long thread) { return pthread_tryjoin_np((pthread_t)thread, NULL); }

int cnet_bytes_readable(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

int cnet_bytes_unsent(int fd) {
    int n = 0;
    return ioctl(fd, TIOCOUTQ, &n) == 0 ? n : -1;
}
