#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <liburing.h>
#include "CURing.h"

struct curing_ring {
    struct io_uring ring;
    /* First error that made the ring unusable (0: none); see next_sqe. */
    int error;
    /* Written instead of a real entry once the ring has failed, so preparing stays
       infallible for callers; it is never submitted. */
    struct io_uring_sqe spare;
};

curing_ring *curing_create(unsigned entries, unsigned cq_entries, const unsigned *flag_candidates, int count, unsigned *accepted, int *error) {
    curing_ring *r = calloc(1, sizeof *r);
    if (!r) { *error = ENOMEM; return NULL; }
    int rc = -EINVAL;
    for (int i = 0; i < count; i++) {
        struct io_uring_params p = {0};
        p.flags = flag_candidates[i];
        if (cq_entries) {
            p.flags |= IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
            p.cq_entries = cq_entries;
        }
        rc = io_uring_queue_init_params(entries, &r->ring, &p);
        if (rc == 0) {
            *accepted = flag_candidates[i];
            /* Each io_uring_enter then skips the descriptor table lookup (5.18+); where
               the kernel refuses, enter takes the plain descriptor as before. */
            (void)io_uring_register_ring_fd(&r->ring);
            return r;
        }
    }
    free(r);
    *error = -rc;
    return NULL;
}

void curing_destroy(curing_ring *r) {
    io_uring_queue_exit(&r->ring);
    free(r);
}

/* One flush of the submission queue. A transient refusal (EINTR, EAGAIN: the kernel could
   not allocate; EBUSY: completions to reap first) is retried by the caller, with 1 ms pauses
   after the first few so that a second of trouble passes; past that, or on any other
   error, the ring is marked failed. */
static void flush(curing_ring *r, int tries) {
    int rc = io_uring_submit(&r->ring);
    if (rc >= 0) return;
    if ((rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) || tries >= 1000) {
        r->error = -rc;
        return;
    }
    if (tries >= 10) {
        struct timespec pause = { 0, 1000000 };
        nanosleep(&pause, NULL);
    }
}

/* A full submission queue is flushed to the kernel rather than reported: callers never
   have to handle "no SQE". A flush that keeps failing (anything but a transient EINTR,
   EAGAIN or EBUSY, or those a thousand times over) marks the ring failed instead of
   spinning: the caller checks curing_error after each batch and gives the ring up. */
static struct io_uring_sqe *next_sqe(curing_ring *r) {
    struct io_uring_sqe *sqe = r->error ? NULL : io_uring_get_sqe(&r->ring);
    for (int tries = 0; !sqe && !r->error; tries++) {
        flush(r, tries);
        sqe = io_uring_get_sqe(&r->ring);
    }
    if (!sqe) {
        memset(&r->spare, 0, sizeof r->spare);
        return &r->spare;
    }
    return sqe;
}

int curing_error(curing_ring *r) { return r->error; }

void curing_prep_accept(curing_ring *r, int fd, void *addr, uint32_t *addrlen, int flags, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_accept(sqe, fd, (struct sockaddr *)addr, (socklen_t *)addrlen, flags);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_connect(curing_ring *r, int fd, const void *addr, uint32_t addrlen, uint64_t ud, void *ts, uint64_t ts_ud) {
    /* Both entries must land in the same submission for the link to hold. */
    for (int tries = 0; ts && !r->error && io_uring_sq_space_left(&r->ring) < 2; tries++) flush(r, tries);
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)addr, addrlen);
    io_uring_sqe_set_data64(sqe, ud);
    if (ts) {
        sqe->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *t = next_sqe(r);
        io_uring_prep_link_timeout(t, (struct __kernel_timespec *)ts, 0);
        io_uring_sqe_set_data64(t, ts_ud);
    }
}

void curing_prep_poll(curing_ring *r, int fd, unsigned events, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_splice(curing_ring *r, int fd_in, int fd_out, unsigned len, unsigned flags, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_splice(sqe, fd_in, -1, fd_out, -1, len, flags);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_read(curing_ring *r, int fd, void *buf, unsigned len, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_read(sqe, fd, buf, len, 0);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_timeout(curing_ring *r, void *ts, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_timeout(sqe, (struct __kernel_timespec *)ts, 0, 0);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_cancel_fd(curing_ring *r, int fd, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_cancel(curing_ring *r, uint64_t target, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, ud);
}

void curing_prep_close(curing_ring *r, int fd, uint64_t ud) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, ud);
}

int curing_submit_and_wait(curing_ring *r, unsigned wait_nr) {
    return io_uring_submit_and_wait(&r->ring, wait_nr);
}

unsigned curing_reap(curing_ring *r, curing_completion *out, unsigned max) {
    struct io_uring_cqe *cqes[64];
    unsigned total = 0;
    while (total < max) {
        unsigned want = max - total < 64 ? max - total : 64;
        unsigned n = io_uring_peek_batch_cqe(&r->ring, cqes, want);
        if (n == 0) break;
        for (unsigned i = 0; i < n; i++) {
            out[total + i].user_data = cqes[i]->user_data;
            out[total + i].res = cqes[i]->res;
            out[total + i].flags = cqes[i]->flags;
        }
        io_uring_cq_advance(&r->ring, n);
        total += n;
    }
    return total;
}

unsigned curing_flag_single_issuer_defer_taskrun(void) { return IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN; }
unsigned curing_flag_coop_taskrun(void) { return IORING_SETUP_COOP_TASKRUN; }
