// Supervisor mode of `mptcpize run` (--seccomp, and automatic for static executables): no
// preload reaches a static binary or a raw socket() syscall, so the program runs under a
// seccomp filter that hands its socket() calls for TCP to this process (SECCOMP_RET_USER_NOTIF).
// The supervisor creates an MPTCP socket and installs it in the program
// (SECCOMP_IOCTL_NOTIF_ADDFD); where MPTCP is refused, the program's own call runs as asked.
// Needs no privilege: only no_new_privs, which the program then also has (setuid binaries it
// starts do not gain privileges).
#ifndef MPTCPIZE_SUPERVISOR_H
#define MPTCPIZE_SUPERVISOR_H

// Runs argv[0] (searched in PATH) under supervision until it exits; returns its exit status
// (128 + signal if killed), or -1 with a message in err when supervision could not start.
// If the program leaves descendants behind (a daemon), a copy of the supervisor stays with them.
int mz_supervise(char *const argv[], int debug, char *err, unsigned long errlen);

#endif
