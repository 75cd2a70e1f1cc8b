// Values of tuning hints MPTCP refused but the shim reported as set, so that getsockopt gives
// the program back what it set, and a socket turned back into TCP gets them for real.
// Touched only on those rare paths; a fixed table keeps the shim free of malloc.
#include "internal.h"

#include <pthread.h>
#include <string.h>

#define SLOTS 4096
#define VALUE_MAX 16

struct slot {
    int fd, level, name;
    socklen_t len;
    unsigned char value[VALUE_MAX];
    bool used;
};

static struct slot slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

// A fork() while another thread holds the lock must not leave the child's copy locked.
static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork(void) { pthread_mutex_unlock(&lock); }
__attribute__((constructor)) static void register_fork_handlers(void) {
    pthread_atfork(before_fork, after_fork, after_fork);
}

// A slot counts only while its descriptor has MZ_FD_HAS_VALUES: close() clears the flag without
// taking the lock, which retires the descriptor's slots at once.
static bool live(const struct slot *s) { return s->used && (mz_fd_flags(s->fd) & MZ_FD_HAS_VALUES); }

static struct slot *find(int fd, int level, int name) {
    for (size_t i = 0; i < SLOTS; i++)
        if (live(&slots[i]) && slots[i].fd == fd && slots[i].level == level && slots[i].name == name) return &slots[i];
    return NULL;
}

bool mz_values_remember(int fd, int level, int name, const void *val, socklen_t len) {
    if (len > VALUE_MAX || (len > 0 && !val) || fd < 0 || fd >= MZ_FD_LIMIT) return false;
    pthread_mutex_lock(&lock);
    if (!(mz_fd_flags(fd) & MZ_FD_HAS_VALUES)) {
        // Slots left by an earlier socket with this number must not come back to life.
        for (size_t i = 0; i < SLOTS; i++)
            if (slots[i].used && slots[i].fd == fd) slots[i].used = false;
    }
    struct slot *s = find(fd, level, name);
    for (size_t i = 0; !s && i < SLOTS; i++)
        if (!live(&slots[i])) s = &slots[i];
    if (s) {
        *s = (struct slot){ .fd = fd, .level = level, .name = name, .len = len, .used = true };
        memcpy(s->value, val, len);
        mz_fd_set(fd, MZ_FD_HAS_VALUES);
    }
    pthread_mutex_unlock(&lock);
    return s != NULL;
}

bool mz_values_lookup(int fd, int level, int name, void *val, socklen_t *len) {
    if (!(mz_fd_flags(fd) & MZ_FD_HAS_VALUES) || !len || (*len > 0 && !val)) return false;
    pthread_mutex_lock(&lock);
    struct slot *s = find(fd, level, name);
    if (s) {
        socklen_t n = *len < s->len ? *len : s->len;
        memcpy(val, s->value, n);
        *len = n;
    }
    pthread_mutex_unlock(&lock);
    return s != NULL;
}

void mz_values_apply(int fd) {
    if (!(mz_fd_flags(fd) & MZ_FD_HAS_VALUES)) return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        if (!live(s) || s->fd != fd) continue;
        if (mz_real.setsockopt(fd, s->level, s->name, s->value, s->len) != 0 && mz_cfg.debug) {
            const char *label = "option";
            mz_opt_policy(s->level, s->name, &label);
            mz_log("fd %d: %s could not be applied to the TCP socket either", fd, label);
        }
        s->used = false;
    }
    mz_fd_clear(fd, MZ_FD_HAS_VALUES);
    pthread_mutex_unlock(&lock);
}
