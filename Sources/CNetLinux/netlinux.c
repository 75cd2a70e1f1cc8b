#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
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

/* Set from a signal handler (any thread), read and cleared by the control loop: a bit per
   signal number. A lock-free atomic OR is async-signal-safe. */
static atomic_uint recorded_signals;

static void record_signal(int sig) {
    if (sig > 0 && sig < 32) atomic_fetch_or(&recorded_signals, 1u << sig);
}

int cnet_record_signal(int sig) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = record_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    return sigaction(sig, &action, NULL);
}

unsigned cnet_take_recorded_signals(void) {
    return atomic_exchange(&recorded_signals, 0);
}
