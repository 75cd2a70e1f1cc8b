// libmptcpize.so: an LD_PRELOAD shim that turns TCP sockets into MPTCP sockets.
//
// It exports only the interposed libc functions (socket, connect, listen, sendto, sendmsg);
// nothing is meant to be called from Swift. The knobs are environment variables, read once
// when the library is loaded (see docs/mptcpize.md):
//
//   MPTCPIZE_DEBUG=1              one line on stderr per decision (converted, fell back, kept)
//   MPTCPIZE_SCOPE=all|connect|listen
//                                 which sockets to convert (default: all, at socket() time)
//   MPTCPIZE_PORTS=LIST           only these ports (peer port for connect, local for listen)
//   MPTCPIZE_EXCLUDE_PORTS=LIST   never these ports; LIST is like "80,443,8000-8100"
#ifndef MPTCPIZE_H
#define MPTCPIZE_H

#define MPTCPIZE_ENV_DEBUG "MPTCPIZE_DEBUG"
#define MPTCPIZE_ENV_SCOPE "MPTCPIZE_SCOPE"
#define MPTCPIZE_ENV_PORTS "MPTCPIZE_PORTS"
#define MPTCPIZE_ENV_EXCLUDE_PORTS "MPTCPIZE_EXCLUDE_PORTS"

#endif
