// libmnl-based netlink calls for the WAN manager. See include/CNetlink.h.
#include "CNetlink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/mptcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <arpa/inet.h>

#define CNL_BUF 65536

struct cnl_socket {
    struct mnl_socket *nl;
    unsigned int portid;
    unsigned int seq;
    uint16_t pm_family;
};

cnl_socket *cnl_open(int bus, unsigned int groups, int *err) {
    cnl_socket *s = calloc(1, sizeof *s);
    if (!s) { *err = -ENOMEM; return NULL; }
    s->nl = mnl_socket_open2(bus, SOCK_CLOEXEC);
    if (!s->nl) { *err = -errno; free(s); return NULL; }
    if (mnl_socket_bind(s->nl, groups, MNL_SOCKET_AUTOPID) < 0) {
        *err = -errno; mnl_socket_close(s->nl); free(s); return NULL;
    }
    s->portid = mnl_socket_get_portid(s->nl);
    s->seq = (unsigned int)time(NULL);
    int fd = mnl_socket_get_fd(s->nl);
    if (groups) {
        // Event sockets are drained from a poll loop; a burst (a link with many routes
        // going down) must not overflow a small default buffer.
        int size = 1 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    } else {
        // A request the kernel never answers must not hang the manager's thread.
        struct timeval tv = { .tv_sec = 5 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    *err = 0;
    return s;
}

void cnl_close(cnl_socket *s) {
    if (!s) return;
    mnl_socket_close(s->nl);
    free(s);
}

int cnl_fd(const cnl_socket *s) { return mnl_socket_get_fd(s->nl); }

/// Sends one request and runs `cb` on every reply until the kernel's ACK or NLMSG_DONE.
static int transact(cnl_socket *s, struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
    unsigned int seq = ++s->seq;
    nlh->nlmsg_seq = seq;
    if (mnl_socket_sendto(s->nl, nlh, nlh->nlmsg_len) < 0) return -errno;
    char *buf = malloc(CNL_BUF);
    if (!buf) return -ENOMEM;
    int ret;
    do {
        ssize_t n = mnl_socket_recvfrom(s->nl, buf, CNL_BUF);
        if (n < 0) {
            if (errno == EINTR) { ret = MNL_CB_OK; continue; }
            ret = -errno; free(buf); return ret;
        }
        ret = mnl_cb_run(buf, (size_t)n, seq, s->portid, cb, data);
    } while (ret > MNL_CB_STOP);
    int saved = errno;
    free(buf);
    return ret < 0 ? -saved : 0;
}

static void copy_addr(uint8_t out[16], const struct nlattr *a) {
    size_t len = mnl_attr_get_payload_len(a);
    memcpy(out, mnl_attr_get_payload(a), len > 16 ? 16 : len);
}

// ---------------------------------------------------------------- mptcp_pm

static int family_cb(const struct nlmsghdr *nlh, void *data) {
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
        if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID) *(uint16_t *)data = mnl_attr_get_u16(a);
    }
    return MNL_CB_OK;
}

static struct nlmsghdr *genl_header(char *buf, uint16_t type, uint8_t cmd, uint8_t version, uint16_t flags) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    struct genlmsghdr *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
    g->cmd = cmd;
    g->version = version;
    return nlh;
}

int cnl_pm_resolve(cnl_socket *s) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_ACK);
    mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, MPTCP_PM_NAME);
    uint16_t id = 0;
    int ret = transact(s, nlh, family_cb, &id);
    if (ret) return ret;
    if (!id) return -ENOENT;
    s->pm_family = id;
    return 0;
}

static void put_endpoint(struct nlmsghdr *nlh, const cnl_endpoint *e, int with_address) {
    struct nlattr *nest = mnl_attr_nest_start(nlh, MPTCP_PM_ATTR_ADDR | NLA_F_NESTED);
    if (with_address) {
        mnl_attr_put_u16(nlh, MPTCP_PM_ADDR_ATTR_FAMILY, e->family);
        if (e->family == AF_INET) mnl_attr_put(nlh, MPTCP_PM_ADDR_ATTR_ADDR4, 4, e->addr);
        else mnl_attr_put(nlh, MPTCP_PM_ADDR_ATTR_ADDR6, 16, e->addr);
        if (e->port) mnl_attr_put_u16(nlh, MPTCP_PM_ADDR_ATTR_PORT, e->port);
        if (e->ifindex) mnl_attr_put_u32(nlh, MPTCP_PM_ADDR_ATTR_IF_IDX, (uint32_t)e->ifindex);
    }
    mnl_attr_put_u8(nlh, MPTCP_PM_ADDR_ATTR_ID, e->id);
    mnl_attr_put_u32(nlh, MPTCP_PM_ADDR_ATTR_FLAGS, e->flags);
    mnl_attr_nest_end(nlh, nest);
}

int cnl_pm_add_addr(cnl_socket *s, const cnl_endpoint *e) {
    if (!s->pm_family) return -ENOENT;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, s->pm_family, MPTCP_PM_CMD_ADD_ADDR, MPTCP_PM_VER, NLM_F_ACK);
    put_endpoint(nlh, e, 1);
    return transact(s, nlh, NULL, NULL);
}

int cnl_pm_del_addr(cnl_socket *s, uint8_t id) {
    if (!s->pm_family) return -ENOENT;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, s->pm_family, MPTCP_PM_CMD_DEL_ADDR, MPTCP_PM_VER, NLM_F_ACK);
    cnl_endpoint e = { .id = id };
    put_endpoint(nlh, &e, 0);
    return transact(s, nlh, NULL, NULL);
}

int cnl_pm_set_flags(cnl_socket *s, uint8_t id, uint32_t flags) {
    if (!s->pm_family) return -ENOENT;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, s->pm_family, MPTCP_PM_CMD_SET_FLAGS, MPTCP_PM_VER, NLM_F_ACK);
    cnl_endpoint e = { .id = id, .flags = flags };
    put_endpoint(nlh, &e, 0);
    return transact(s, nlh, NULL, NULL);
}

struct fill { void *out; int cap; int total; size_t size; };

static void *fill_next(struct fill *f) {
    int i = f->total++;
    if (i >= f->cap) return NULL;
    void *slot = (char *)f->out + (size_t)i * f->size;
    memset(slot, 0, f->size);
    return slot;
}

static int endpoint_cb(const struct nlmsghdr *nlh, void *data) {
    const struct nlattr *a, *n;
    mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
        if ((mnl_attr_get_type(a) & NLA_TYPE_MASK) != MPTCP_PM_ATTR_ADDR) continue;
        cnl_endpoint *e = fill_next(data);
        if (!e) continue;
        mnl_attr_for_each_nested(n, a) {
            switch (mnl_attr_get_type(n) & NLA_TYPE_MASK) {
            case MPTCP_PM_ADDR_ATTR_FAMILY: e->family = (uint8_t)mnl_attr_get_u16(n); break;
            case MPTCP_PM_ADDR_ATTR_ID: e->id = mnl_attr_get_u8(n); break;
            case MPTCP_PM_ADDR_ATTR_ADDR4:
            case MPTCP_PM_ADDR_ATTR_ADDR6: copy_addr(e->addr, n); break;
            case MPTCP_PM_ADDR_ATTR_PORT: e->port = mnl_attr_get_u16(n); break;
            case MPTCP_PM_ADDR_ATTR_FLAGS: e->flags = mnl_attr_get_u32(n); break;
            case MPTCP_PM_ADDR_ATTR_IF_IDX: e->ifindex = (int32_t)mnl_attr_get_u32(n); break;
            }
        }
    }
    return MNL_CB_OK;
}

int cnl_pm_dump_addrs(cnl_socket *s, cnl_endpoint *out, int cap, int *total) {
    if (!s->pm_family) return -ENOENT;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, s->pm_family, MPTCP_PM_CMD_GET_ADDR, MPTCP_PM_VER, NLM_F_DUMP);
    struct fill f = { out, cap, 0, sizeof *out };
    int ret = transact(s, nlh, endpoint_cb, &f);
    *total = f.total;
    return ret;
}

int cnl_pm_set_limits(cnl_socket *s, uint32_t subflows, uint32_t add_addr_accepted) {
    if (!s->pm_family) return -ENOENT;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, s->pm_family, MPTCP_PM_CMD_SET_LIMITS, MPTCP_PM_VER, NLM_F_ACK);
    mnl_attr_put_u32(nlh, MPTCP_PM_ATTR_RCV_ADD_ADDRS, add_addr_accepted);
    mnl_attr_put_u32(nlh, MPTCP_PM_ATTR_SUBFLOWS, subflows);
    return transact(s, nlh, NULL, NULL);
}

struct limits { uint32_t subflows, accepted; };

static int limits_cb(const struct nlmsghdr *nlh, void *data) {
    struct limits *l = data;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
        switch (mnl_attr_get_type(a) & NLA_TYPE_MASK) {
        case MPTCP_PM_ATTR_SUBFLOWS: l->subflows = mnl_attr_get_u32(a); break;
        case MPTCP_PM_ATTR_RCV_ADD_ADDRS: l->accepted = mnl_attr_get_u32(a); break;
        }
    }
    return MNL_CB_OK;
}

int cnl_pm_get_limits(cnl_socket *s, uint32_t *subflows, uint32_t *add_addr_accepted) {
    if (!s->pm_family) return -ENOENT;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, s->pm_family, MPTCP_PM_CMD_GET_LIMITS, MPTCP_PM_VER, NLM_F_ACK);
    struct limits l = { 0, 0 };
    int ret = transact(s, nlh, limits_cb, &l);
    *subflows = l.subflows;
    *add_addr_accepted = l.accepted;
    return ret;
}

// ---------------------------------------------------------------- mptcp_pm_events

struct group_lookup { uint16_t family; uint32_t group; };

static int group_cb(const struct nlmsghdr *nlh, void *data) {
    struct group_lookup *g = data;
    const struct nlattr *a, *grp, *x;
    mnl_attr_for_each(a, nlh, sizeof(struct genlmsghdr)) {
        switch (mnl_attr_get_type(a)) {
        case CTRL_ATTR_FAMILY_ID: g->family = mnl_attr_get_u16(a); break;
        case CTRL_ATTR_MCAST_GROUPS:
            mnl_attr_for_each_nested(grp, a) {
                const char *name = NULL;
                uint32_t id = 0;
                mnl_attr_for_each_nested(x, grp) {
                    if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_NAME) name = mnl_attr_get_str(x);
                    if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_ID) id = mnl_attr_get_u32(x);
                }
                if (name && strcmp(name, MPTCP_PM_EV_GRP_NAME) == 0) g->group = id;
            }
            break;
        }
    }
    return MNL_CB_OK;
}

int cnl_pm_join_events(cnl_socket *s) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = genl_header(buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_ACK);
    mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, MPTCP_PM_NAME);
    struct group_lookup g = { 0, 0 };
    int ret = transact(s, nlh, group_cb, &g);
    if (ret) return ret;
    if (!g.family || !g.group) return -ENOENT;
    s->pm_family = g.family;
    int group = (int)g.group;
    if (mnl_socket_setsockopt(s->nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) return -errno;
    int fd = mnl_socket_get_fd(s->nl);
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

static void parse_pm_event(const struct nlmsghdr *nlh, cnl_pm_event *ev) {
    const struct genlmsghdr *g = mnl_nlmsg_get_payload(nlh);
    memset(ev, 0, sizeof *ev);
    ev->type = g->cmd;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *g) {
        switch (mnl_attr_get_type(a)) {
        case MPTCP_ATTR_TOKEN: ev->token = mnl_attr_get_u32(a); break;
        case MPTCP_ATTR_FAMILY: ev->family = (uint8_t)mnl_attr_get_u16(a); break;
        case MPTCP_ATTR_LOC_ID: ev->loc_id = mnl_attr_get_u8(a); break;
        case MPTCP_ATTR_REM_ID: ev->rem_id = mnl_attr_get_u8(a); break;
        case MPTCP_ATTR_SADDR4: case MPTCP_ATTR_SADDR6: copy_addr(ev->saddr, a); break;
        case MPTCP_ATTR_DADDR4: case MPTCP_ATTR_DADDR6: copy_addr(ev->daddr, a); break;
        case MPTCP_ATTR_SPORT: ev->sport = ntohs(mnl_attr_get_u16(a)); break;
        case MPTCP_ATTR_DPORT: ev->dport = ntohs(mnl_attr_get_u16(a)); break;
        case MPTCP_ATTR_BACKUP: ev->backup = mnl_attr_get_u8(a); break;
        case MPTCP_ATTR_ERROR: ev->error = mnl_attr_get_u8(a); break;
        case MPTCP_ATTR_FLAGS: ev->flags = mnl_attr_get_u16(a); break;
        case MPTCP_ATTR_IF_IDX: ev->ifindex = (int32_t)mnl_attr_get_u32(a); break;
        }
    }
}

int cnl_pm_ev_drain(cnl_socket *s, cnl_pm_event *out, int cap, int *count) {
    *count = 0;
    char *buf = malloc(CNL_BUF);
    if (!buf) return -ENOMEM;
    for (;;) {
        ssize_t n = recv(mnl_socket_get_fd(s->nl), buf, CNL_BUF, MSG_DONTWAIT);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) break;
            if (e == ENOBUFS) {
                if (*count < cap) memset(&out[(*count)++], 0, sizeof *out);
                continue;
            }
            free(buf);
            return -e;
        }
        const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
        int len = (int)n;
        for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
            if (nlh->nlmsg_type != s->pm_family || *count >= cap) continue;
            parse_pm_event(nlh, &out[(*count)++]);
        }
    }
    free(buf);
    return 0;
}

// ---------------------------------------------------------------- rtnetlink dumps

static struct nlmsghdr *rt_header(char *buf, uint16_t type, uint16_t flags) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    return nlh;
}

static int link_cb(const struct nlmsghdr *nlh, void *data) {
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    cnl_link *l = fill_next(data);
    if (!l) return MNL_CB_OK;
    l->ifindex = ifi->ifi_index;
    l->flags = ifi->ifi_flags;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *ifi) {
        switch (mnl_attr_get_type(a)) {
        case IFLA_IFNAME: strncpy(l->name, mnl_attr_get_str(a), sizeof l->name - 1); break;
        case IFLA_OPERSTATE: l->operstate = mnl_attr_get_u8(a); break;
        }
    }
    return MNL_CB_OK;
}

int cnl_rt_dump_links(cnl_socket *s, cnl_link *out, int cap, int *total) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = rt_header(buf, RTM_GETLINK, NLM_F_DUMP);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *ifi);
    ifi->ifi_family = AF_UNSPEC;
    struct fill f = { out, cap, 0, sizeof *out };
    int ret = transact(s, nlh, link_cb, &f);
    *total = f.total;
    return ret;
}

static int address_cb(const struct nlmsghdr *nlh, void *data) {
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    cnl_address *x = fill_next(data);
    if (!x) return MNL_CB_OK;
    x->ifindex = (int32_t)ifa->ifa_index;
    x->family = ifa->ifa_family;
    x->prefixlen = ifa->ifa_prefixlen;
    x->scope = ifa->ifa_scope;
    x->flags = ifa->ifa_flags;
    const struct nlattr *a;
    int have_local = 0;
    mnl_attr_for_each(a, nlh, sizeof *ifa) {
        switch (mnl_attr_get_type(a)) {
        // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
        case IFA_LOCAL: copy_addr(x->addr, a); have_local = 1; break;
        case IFA_ADDRESS: if (!have_local) copy_addr(x->addr, a); break;
        case IFA_FLAGS: x->flags = mnl_attr_get_u32(a); break;
        }
    }
    return MNL_CB_OK;
}

int cnl_rt_dump_addresses(cnl_socket *s, cnl_address *out, int cap, int *total) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = rt_header(buf, RTM_GETADDR, NLM_F_DUMP);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);
    ifa->ifa_family = AF_UNSPEC;
    struct fill f = { out, cap, 0, sizeof *out };
    int ret = transact(s, nlh, address_cb, &f);
    *total = f.total;
    return ret;
}

static int route_cb(const struct nlmsghdr *nlh, void *data) {
    const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
    if (rtm->rtm_type != RTN_UNICAST) return MNL_CB_OK;
    if (rtm->rtm_flags & RTM_F_CLONED) return MNL_CB_OK;
    cnl_route *r = fill_next(data);
    if (!r) return MNL_CB_OK;
    r->family = rtm->rtm_family;
    r->dst_len = rtm->rtm_dst_len;
    r->protocol = rtm->rtm_protocol;
    r->type = rtm->rtm_type;
    r->scope = rtm->rtm_scope;
    r->table = rtm->rtm_table;
    r->flags = rtm->rtm_flags;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *rtm) {
        switch (mnl_attr_get_type(a)) {
        case RTA_TABLE: r->table = mnl_attr_get_u32(a); break;
        case RTA_DST: copy_addr(r->dst, a); break;
        case RTA_GATEWAY: copy_addr(r->gateway, a); r->has_gateway = 1; break;
        case RTA_OIF: r->oif = (int32_t)mnl_attr_get_u32(a); break;
        case RTA_PRIORITY: r->priority = mnl_attr_get_u32(a); break;
        }
    }
    return MNL_CB_OK;
}

int cnl_rt_dump_routes(cnl_socket *s, cnl_route *out, int cap, int *total) {
    struct fill f = { out, cap, 0, sizeof *out };
    // One dump per family: an AF_UNSPEC route dump is not answered the same way on
    // every kernel.
    int families[2] = { AF_INET, AF_INET6 };
    for (int i = 0; i < 2; i++) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = rt_header(buf, RTM_GETROUTE, NLM_F_DUMP);
        struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof *rtm);
        rtm->rtm_family = (uint8_t)families[i];
        rtm->rtm_table = RT_TABLE_UNSPEC;
        int ret = transact(s, nlh, route_cb, &f);
        if (ret) { *total = f.total; return ret; }
    }
    *total = f.total;
    return 0;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data) {
    const struct fib_rule_hdr *h = mnl_nlmsg_get_payload(nlh);
    cnl_rule *r = fill_next(data);
    if (!r) return MNL_CB_OK;
    r->family = h->family;
    r->src_len = h->src_len;
    r->action = h->action;
    r->table = h->table;
    r->suppress_prefixlen = -1;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *h) {
        switch (mnl_attr_get_type(a)) {
        case FRA_SRC: copy_addr(r->src, a); break;
        case FRA_FWMARK: r->fwmark = mnl_attr_get_u32(a); break;
        case FRA_FWMASK: r->fwmask = mnl_attr_get_u32(a); break;
        // The kernel reports "none" as -1 (all ones).
        case FRA_SUPPRESS_PREFIXLEN: r->suppress_prefixlen = (int32_t)mnl_attr_get_u32(a); break;
        case FRA_TABLE: r->table = mnl_attr_get_u32(a); break;
        case FRA_PRIORITY: r->priority = mnl_attr_get_u32(a); break;
        case FRA_PROTOCOL: r->protocol = mnl_attr_get_u8(a); break;
        }
    }
    return MNL_CB_OK;
}

int cnl_rt_dump_rules(cnl_socket *s, cnl_rule *out, int cap, int *total) {
    struct fill f = { out, cap, 0, sizeof *out };
    int families[2] = { AF_INET, AF_INET6 };
    for (int i = 0; i < 2; i++) {
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlmsghdr *nlh = rt_header(buf, RTM_GETRULE, NLM_F_DUMP);
        struct fib_rule_hdr *h = mnl_nlmsg_put_extra_header(nlh, sizeof *h);
        h->family = (uint8_t)families[i];
        int ret = transact(s, nlh, rule_cb, &f);
        if (ret) { *total = f.total; return ret; }
    }
    *total = f.total;
    return 0;
}

// ---------------------------------------------------------------- rtnetlink changes

static size_t addr_len(uint8_t family) { return family == AF_INET ? 4 : 16; }

int cnl_rt_route(cnl_socket *s, int add, const cnl_route *r) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = rt_header(buf, add ? RTM_NEWROUTE : RTM_DELROUTE,
                                     NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0));
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof *rtm);
    rtm->rtm_family = r->family;
    rtm->rtm_dst_len = r->dst_len;
    rtm->rtm_table = r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
    rtm->rtm_protocol = r->protocol;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_scope = add ? r->scope : RT_SCOPE_NOWHERE;
    rtm->rtm_flags = r->flags;
    mnl_attr_put_u32(nlh, RTA_TABLE, r->table);
    if (r->dst_len) mnl_attr_put(nlh, RTA_DST, addr_len(r->family), r->dst);
    if (r->has_gateway) mnl_attr_put(nlh, RTA_GATEWAY, addr_len(r->family), r->gateway);
    if (r->oif) mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)r->oif);
    if (r->priority) mnl_attr_put_u32(nlh, RTA_PRIORITY, r->priority);
    return transact(s, nlh, NULL, NULL);
}

int cnl_rt_rule(cnl_socket *s, int add, const cnl_rule *r) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = rt_header(buf, add ? RTM_NEWRULE : RTM_DELRULE,
                                     NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0));
    struct fib_rule_hdr *h = mnl_nlmsg_put_extra_header(nlh, sizeof *h);
    h->family = r->family;
    h->src_len = r->src_len;
    h->table = r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
    h->action = FR_ACT_TO_TBL;
    if (r->src_len) mnl_attr_put(nlh, FRA_SRC, addr_len(r->family), r->src);
    if (r->fwmark || r->fwmask) {
        mnl_attr_put_u32(nlh, FRA_FWMARK, r->fwmark);
        mnl_attr_put_u32(nlh, FRA_FWMASK, r->fwmask);
    }
    if (r->suppress_prefixlen >= 0) mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, (uint32_t)r->suppress_prefixlen);
    mnl_attr_put_u32(nlh, FRA_TABLE, r->table);
    mnl_attr_put_u32(nlh, FRA_PRIORITY, r->priority);
    if (r->protocol) mnl_attr_put_u8(nlh, FRA_PROTOCOL, r->protocol);
    return transact(s, nlh, NULL, NULL);
}

// ---------------------------------------------------------------- conntrack

/// An entry to delete: its original tuple as the kernel sent it (the attribute, header
/// included) and its zone.
struct ct_victim { uint8_t tuple[256]; uint16_t tuple_len; uint16_t zone; int has_zone; };

struct ct_scan {
    uint8_t family;
    const uint8_t *addrs;
    int count;
    struct ct_victim *victims;
    int n, cap;
    int oom;
};

/// The address `which` (CTA_IP_V4_SRC/DST or the V6 twin) of a CTA_TUPLE_* attribute.
static int tuple_addr(const struct nlattr *tuple, int v6, int dst, uint8_t out[16]) {
    const struct nlattr *t, *ip;
    mnl_attr_for_each_nested(t, tuple) {
        if ((mnl_attr_get_type(t) & NLA_TYPE_MASK) != CTA_TUPLE_IP) continue;
        mnl_attr_for_each_nested(ip, t) {
            int type = mnl_attr_get_type(ip) & NLA_TYPE_MASK;
            int want = v6 ? (dst ? CTA_IP_V6_DST : CTA_IP_V6_SRC) : (dst ? CTA_IP_V4_DST : CTA_IP_V4_SRC);
            if (type != want) continue;
            memset(out, 0, 16);
            copy_addr(out, ip);
            return 1;
        }
    }
    return 0;
}

static int in_set(const struct ct_scan *c, const uint8_t a[16]) {
    size_t len = c->family == AF_INET ? 4 : 16;
    for (int i = 0; i < c->count; i++) if (!memcmp(c->addrs + 16 * i, a, len)) return 1;
    return 0;
}

static int ct_cb(const struct nlmsghdr *nlh, void *data) {
    struct ct_scan *c = data;
    const struct nlattr *a, *orig = NULL, *reply = NULL;
    uint16_t zone = 0; int has_zone = 0;
    mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
        switch (mnl_attr_get_type(a) & NLA_TYPE_MASK) {
        case CTA_TUPLE_ORIG: orig = a; break;
        case CTA_TUPLE_REPLY: reply = a; break;
        case CTA_ZONE: zone = mnl_attr_get_u16(a); has_zone = 1; break;
        }
    }
    if (!orig || !reply) return MNL_CB_OK;
    uint8_t src[16], rdst[16];
    int v6 = c->family == AF_INET6;
    if (!tuple_addr(orig, v6, 0, src) || !tuple_addr(reply, v6, 1, rdst)) return MNL_CB_OK;
    // Source-NATed to one of the addresses: replies come to it, the flow did not start there.
    if (!in_set(c, rdst) || in_set(c, src)) return MNL_CB_OK;
    if (orig->nla_len > sizeof c->victims[0].tuple) return MNL_CB_OK;
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 64;
        struct ct_victim *v = realloc(c->victims, (size_t)cap * sizeof *v);
        if (!v) { c->oom = 1; return MNL_CB_OK; }
        c->victims = v; c->cap = cap;
    }
    struct ct_victim *v = &c->victims[c->n++];
    memcpy(v->tuple, orig, orig->nla_len);
    v->tuple_len = orig->nla_len;
    v->zone = zone; v->has_zone = has_zone;
    return MNL_CB_OK;
}

static struct nlmsghdr *ct_header(char *buf, uint8_t msg, uint16_t flags, uint8_t family) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof *g);
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
    g->res_id = 0;
    return nlh;
}

int cnl_ct_delete_snat(cnl_socket *s, uint8_t family, const uint8_t *addrs, int count, int *deleted) {
    *deleted = 0;
    if (count <= 0) return 0;
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct ct_scan c = { family, addrs, count, NULL, 0, 0, 0 };
    // A dump cannot be interleaved with requests on one socket: collect, then delete.
    struct nlmsghdr *nlh = ct_header(buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, family);
    int ret = transact(s, nlh, ct_cb, &c);
    if (ret == 0 && c.oom) ret = -ENOMEM;
    for (int i = 0; ret == 0 && i < c.n; i++) {
        nlh = ct_header(buf, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family);
        memcpy(mnl_nlmsg_get_payload_tail(nlh), c.victims[i].tuple, c.victims[i].tuple_len);
        nlh->nlmsg_len += MNL_ALIGN(c.victims[i].tuple_len);
        if (c.victims[i].has_zone) mnl_attr_put_u16(nlh, CTA_ZONE, c.victims[i].zone);
        int r = transact(s, nlh, NULL, NULL);
        // Gone already (the flow ended, or a timeout): nothing to move.
        if (r == 0) (*deleted)++;
        else if (r != -ENOENT) ret = r;
    }
    free(c.victims);
    return ret;
}

// ---------------------------------------------------------------- events

int cnl_ev_drain(cnl_socket *s, cnl_event *out, int cap, int *count) {
    *count = 0;
    char *buf = malloc(CNL_BUF);
    if (!buf) return -ENOMEM;
    for (;;) {
        ssize_t n = recv(mnl_socket_get_fd(s->nl), buf, CNL_BUF, MSG_DONTWAIT);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) break;
            if (e == ENOBUFS) {
                // The kernel dropped events: the caller re-reads everything.
                if (*count < cap) out[(*count)++] = (cnl_event){ .kind = CNL_EV_OVERRUN };
                continue;
            }
            free(buf);
            return -e;
        }
        const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
        int len = (int)n;
        for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
            cnl_event ev = { .kind = CNL_EV_OTHER };
            switch (nlh->nlmsg_type) {
            case RTM_NEWLINK: case RTM_DELLINK: {
                const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
                ev = (cnl_event){ CNL_EV_LINK, nlh->nlmsg_type == RTM_DELLINK, ifi->ifi_index, ifi->ifi_flags };
                break;
            }
            case RTM_NEWADDR: case RTM_DELADDR: {
                const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
                ev = (cnl_event){ CNL_EV_ADDRESS, nlh->nlmsg_type == RTM_DELADDR, (int32_t)ifa->ifa_index, 0 };
                break;
            }
            case RTM_NEWROUTE: case RTM_DELROUTE:
                ev = (cnl_event){ CNL_EV_ROUTE, nlh->nlmsg_type == RTM_DELROUTE, 0, 0 };
                break;
            }
            if (*count < cap) out[(*count)++] = ev;
            else out[cap - 1] = (cnl_event){ .kind = CNL_EV_OVERRUN };
        }
    }
    free(buf);
    return 0;
}
