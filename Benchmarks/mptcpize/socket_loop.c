// socket()+close() N times; prints ns per call. `tcp` is what the shim converts, `udp` what it
// passes through; `invalid` is socket(-1, ...), which the kernel refuses at once, so the
// wrapper's own dispatch cost is not buried under the cost of creating a socket.
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s tcp|udp|invalid N\n", argv[0]);
        return 2;
    }
    int invalid = strcmp(argv[1], "invalid") == 0;
    int family = invalid ? -1 : AF_INET;
    int type = strcmp(argv[1], "udp") == 0 ? SOCK_DGRAM : SOCK_STREAM;
    long n = atol(argv[2]);
    for (long i = 0; i < n / 10; i++) {  // warm up
        int fd = socket(family, type, 0);
        if (fd >= 0) close(fd);
    }
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int fd = socket(family, type, 0);
        if (invalid) continue;
        if (fd < 0) {
            perror("socket");
            return 1;
        }
        close(fd);
    }
    printf("%.0f\n", (now_ns() - t0) / n);
    return 0;
}
