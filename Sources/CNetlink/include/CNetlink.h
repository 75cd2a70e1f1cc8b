#ifndef CNETLINK_H
#define CNETLINK_H
// Netlink requests the WAN manager needs (generic netlink `mptcp_pm`, rtnetlink links,
// addresses, routes and rules), built and parsed with libmnl. The header exposes only
// plain structs: Swift never sees libmnl or the uapi headers, which clash with Glibc's.
// Every function returns 0 or a negative errno.
#include <stdint.h>

typedef struct cnl_socket cnl_socket;

/// Opens a netlink socket on `bus` (NETLINK_ROUTE = 0, NETLINK_GENERIC = 16) joined to the
/// rtnetlink multicast `groups` (RTMGRP_* bits; 0 for a request socket). NULL with *err set.
cnl_socket *cnl_open(int bus, unsigned int groups, int *err);
void cnl_close(cnl_socket *s);
int cnl_fd(const cnl_socket *s);

#define CNL_RTMGRP_LINK        0x1
#define CNL_RTMGRP_IPV4_IFADDR 0x10
#define CNL_RTMGRP_IPV4_ROUTE  0x40
#define CNL_RTMGRP_IPV6_IFADDR 0x100
#define CNL_RTMGRP_IPV6_ROUTE  0x400

// ---- mptcp_pm (include/uapi/linux/mptcp_pm.h) ----
#define CNL_PM_FLAG_SIGNAL   (1u << 0)
#define CNL_PM_FLAG_SUBFLOW  (1u << 1)
#define CNL_PM_FLAG_BACKUP   (1u << 2)
#define CNL_PM_FLAG_FULLMESH (1u << 3)
#define CNL_PM_FLAG_IMPLICIT (1u << 4)
#define CNL_PM_FLAG_LAMINAR  (1u << 5)  /* Linux 6.18; Debian 12's headers predate it */

typedef struct {
    uint8_t id;
    uint8_t family;      /* AF_INET or AF_INET6 */
    uint16_t port;
    uint32_t flags;
    int32_t ifindex;     /* 0: no `dev` */
    uint8_t addr[16];    /* network order; IPv4 in the first 4 bytes */
} cnl_endpoint;

/// Resolves the `mptcp_pm` family id on a NETLINK_GENERIC socket (needed before the calls below).
int cnl_pm_resolve(cnl_socket *s);
int cnl_pm_add_addr(cnl_socket *s, const cnl_endpoint *e);
int cnl_pm_del_addr(cnl_socket *s, uint8_t id);
/// Changes the backup/fullmesh flags of endpoint `id` (MPTCP_PM_CMD_SET_FLAGS).
int cnl_pm_set_flags(cnl_socket *s, uint8_t id, uint32_t flags);
/// Fills up to `cap` endpoints; *total is how many exist (retry with more room if > cap).
int cnl_pm_dump_addrs(cnl_socket *s, cnl_endpoint *out, int cap, int *total);
int cnl_pm_set_limits(cnl_socket *s, uint32_t subflows, uint32_t add_addr_accepted);
int cnl_pm_get_limits(cnl_socket *s, uint32_t *subflows, uint32_t *add_addr_accepted);

// ---- mptcp_pm_events multicast group ----
// Event types (MPTCP_EVENT_*) and, newer than Debian 12's headers, the listener events
// (Linux 6.2) and the MPTCP_ATTR_FLAGS bits (Linux 6.4+).
#define CNL_PM_EVENT_CREATED          1
#define CNL_PM_EVENT_ESTABLISHED      2
#define CNL_PM_EVENT_CLOSED           3
#define CNL_PM_EVENT_ANNOUNCED        6
#define CNL_PM_EVENT_REMOVED          7
#define CNL_PM_EVENT_SUB_ESTABLISHED  10
#define CNL_PM_EVENT_SUB_CLOSED       11
#define CNL_PM_EVENT_SUB_PRIORITY     13
#define CNL_PM_EVENT_LISTENER_CREATED 15
#define CNL_PM_EVENT_LISTENER_CLOSED  16
#define CNL_PM_EV_FLAG_DENY_JOIN_ID0  (1u << 0)
#define CNL_PM_EV_FLAG_SERVER_SIDE    (1u << 1)

typedef struct {
    uint8_t type;        /* CNL_PM_EVENT_* */
    uint8_t family;
    uint8_t loc_id;
    uint8_t rem_id;
    uint8_t backup;
    uint8_t error;       /* errno of a closed subflow, 0 if none */
    uint16_t flags;      /* CNL_PM_EV_FLAG_* */
    uint16_t sport, dport;  /* host order */
    uint32_t token;
    int32_t ifindex;
    uint8_t saddr[16];
    uint8_t daddr[16];
} cnl_pm_event;

/// Joins the `mptcp_pm_events` group on a NETLINK_GENERIC socket (resolves the family too)
/// and makes the socket non-blocking.
int cnl_pm_join_events(cnl_socket *s);
/// Reads what is queued without blocking; like cnl_ev_drain. An overrun (ENOBUFS) is
/// reported as type 0.
int cnl_pm_ev_drain(cnl_socket *s, cnl_pm_event *out, int cap, int *count);

// ---- rtnetlink ----
typedef struct {
    int32_t ifindex;
    uint32_t flags;      /* IFF_* */
    uint8_t operstate;   /* IF_OPER_*; 6 = up */
    char name[16];
} cnl_link;

typedef struct {
    int32_t ifindex;
    uint8_t family;
    uint8_t prefixlen;
    uint8_t scope;       /* RT_SCOPE_*: 0 universe (global), 253 link, 254 host */
    uint32_t flags;      /* IFA_F_* (tentative, deprecated, ...) */
    uint8_t addr[16];
} cnl_address;

typedef struct {
    uint8_t family;
    uint8_t dst_len;
    uint8_t protocol;    /* RTPROT_*: who installed it */
    uint8_t type;        /* RTN_* */
    uint8_t scope;
    uint8_t has_gateway;
    uint32_t table;
    int32_t oif;
    uint32_t priority;   /* metric */
    uint32_t flags;      /* RTNH_F_* */
    uint8_t dst[16];
    uint8_t gateway[16];
} cnl_route;

typedef struct {
    uint8_t family;
    uint8_t src_len;
    uint8_t protocol;    /* FRA_PROTOCOL */
    uint8_t action;      /* FR_ACT_*; 1 = to table */
    uint32_t table;
    uint32_t priority;
    uint32_t fwmark;     /* FRA_FWMARK; 0 with fwmask 0: no mark match */
    uint32_t fwmask;     /* FRA_FWMASK */
    int32_t suppress_prefixlen;  /* FRA_SUPPRESS_PREFIXLEN; -1: none */
    uint8_t src[16];
} cnl_rule;

int cnl_rt_dump_links(cnl_socket *s, cnl_link *out, int cap, int *total);
int cnl_rt_dump_addresses(cnl_socket *s, cnl_address *out, int cap, int *total);
/// Every unicast route of every table, both families.
int cnl_rt_dump_routes(cnl_socket *s, cnl_route *out, int cap, int *total);
int cnl_rt_dump_rules(cnl_socket *s, cnl_rule *out, int cap, int *total);
/// Adds (create or replace) or deletes a unicast route.
int cnl_rt_route(cnl_socket *s, int add, const cnl_route *r);
/// Adds or deletes a rule: `[from SRC] [fwmark M/MASK] lookup TABLE [suppress_prefixlength N]`.
int cnl_rt_rule(cnl_socket *s, int add, const cnl_rule *r);

// ---- conntrack (NETLINK_NETFILTER = 12) ----
/// Deletes the conntrack entries of `family` that were source-NATed to one of `addrs`
/// (`count` addresses of 16 bytes each, IPv4 in the first 4): reply destination in `addrs`,
/// original source not. *deleted is how many went. The socket must be on bus 12.
int cnl_ct_delete_snat(cnl_socket *s, uint8_t family, const uint8_t *addrs, int count, int *deleted);

// ---- events ----
enum { CNL_EV_LINK = 1, CNL_EV_ADDRESS = 2, CNL_EV_ROUTE = 3, CNL_EV_OTHER = 4, CNL_EV_OVERRUN = 5 };
typedef struct {
    uint8_t kind;
    uint8_t removed;     /* RTM_DEL* */
    int32_t ifindex;
    uint32_t flags;      /* links: IFF_* */
} cnl_event;

/// Reads what is queued on a multicast socket without blocking; *count events filled (at
/// most cap; the rest of a datagram is dropped but a CNL_EV_OVERRUN says state must be
/// re-read). Returns 0 when the queue is empty.
int cnl_ev_drain(cnl_socket *s, cnl_event *out, int cap, int *count);

#endif
