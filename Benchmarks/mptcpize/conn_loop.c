// Connection-rate probe. `server PORT`: accept, read the request, answer a tiny HTTP/1.0
// response and close, forever (so wrk can drive it too). `client PORT N`: N sequential
// connections to 127.0.0.1:PORT (connect, send, read to EOF, close); prints connections/s.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int serve(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = loopback(port);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1024) != 0) {
        perror("server");
        return 1;
    }
    for (;;) {
        static const char reply[] = "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";
        char req[4096];
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        if (read(c, req, sizeof req) > 0) {
            ssize_t w = write(c, reply, sizeof reply - 1);
            (void)w;
        }
        close(c);
    }
}

static int connect_many(int port, long n) {
    struct sockaddr_in a = loopback(port);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        static const char req[] = "GET / HTTP/1.0\r\n\r\n";
        char buf[256];
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, sizeof req - 1) < 0) {
            perror("client");
            return 1;
        }
        while (read(fd, buf, sizeof buf) > 0) {}
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.0f\n", n / ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9));
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "server") == 0) return serve(atoi(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "client") == 0) return connect_many(atoi(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: %s server PORT | client PORT N\n", argv[0]);
    return 2;
}
