#ifndef CURING_H
#define CURING_H
// The relay's door to liburing. liburing's headers stay inside uring_shim.c: its copy of
// the io_uring uapi structs clashes with the kernel header that swift-system's CSystem
// module imports, so Swift only ever sees this opaque interface.
#include <stdint.h>

typedef struct curing_ring curing_ring;

/// One completion copied out of the CQ ring.
typedef struct {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} curing_completion;

/// io_uring_queue_init_params with the first of `flag_candidates` the kernel accepts, and a
/// completion queue of `cq_entries` (IORING_SETUP_CQSIZE, clamped) when it is not 0.
/// Returns NULL and sets *error (a positive errno) on failure.
curing_ring *curing_create(unsigned entries, unsigned cq_entries, const unsigned *flag_candidates, int count, unsigned *accepted, int *error);
void curing_destroy(curing_ring *ring);

void curing_prep_accept(curing_ring *ring, int fd, void *addr, uint32_t *addrlen, int flags, uint64_t user_data);
/// connect, linked to a link-timeout when `timespec` (a struct __kernel_timespec) is not NULL.
void curing_prep_connect(curing_ring *ring, int fd, const void *addr, uint32_t addrlen, uint64_t user_data,
                         void *timespec, uint64_t timeout_user_data);
void curing_prep_poll(curing_ring *ring, int fd, unsigned events, uint64_t user_data);
void curing_prep_splice(curing_ring *ring, int fd_in, int fd_out, unsigned len, unsigned flags, uint64_t user_data);
void curing_prep_read(curing_ring *ring, int fd, void *buf, unsigned len, uint64_t user_data);
void curing_prep_timeout(curing_ring *ring, void *timespec, uint64_t user_data);
void curing_prep_cancel_fd(curing_ring *ring, int fd, uint64_t user_data);
void curing_prep_cancel(curing_ring *ring, uint64_t target, uint64_t user_data);
void curing_prep_close(curing_ring *ring, int fd, uint64_t user_data);

/// io_uring_submit_and_wait; returns its result (negative errno on failure).
int curing_submit_and_wait(curing_ring *ring, unsigned wait_nr);
/* The error that made the ring unusable while preparing an operation, or 0. */
int curing_error(curing_ring *ring);
/// Copies up to `max` ready completions into `out`, marks them seen, returns the count.
unsigned curing_reap(curing_ring *ring, curing_completion *out, unsigned max);

/// Setup flags, for callers that want to name them.
unsigned curing_flag_single_issuer_defer_taskrun(void);
unsigned curing_flag_coop_taskrun(void);
#endif
