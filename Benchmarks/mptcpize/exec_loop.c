// exec_loop N PROGRAM: runs PROGRAM (no arguments) N times, one after the other, with this
// process's environment (so LD_PRELOAD applies to every child), and prints the CPU time (user +
// system) the children used, in microseconds per run. What it measures is what a preload
// costs every process it is loaded into; CPU time rather than wall time, because on a shared
// machine the wall time mostly measures waiting for a core.
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: exec_loop N PROGRAM\n");
        return 2;
    }
    long n = atol(argv[1]);
    char *child_argv[] = {argv[2], NULL};
    for (long i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, argv[2], NULL, NULL, child_argv, environ) != 0) {
            perror("posix_spawn");
            return 1;
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "exec_loop: %s failed\n", argv[2]);
            return 1;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double us = ((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / (double)n;
    printf("%.0f\n", us);
    return 0;
}
