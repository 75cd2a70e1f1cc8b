// Reads the MPTCPIZE_* environment variables into a static configuration (no allocation).
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_bit(uint8_t *bits, unsigned port) { bits[port >> 3] |= (uint8_t)(1u << (port & 7)); }
static bool get_bit(const uint8_t *bits, unsigned port) { return bits[port >> 3] & (1u << (port & 7)); }

static bool parse_number(const char **p, unsigned *out) {
    const char *s = *p;
    unsigned v = 0;
    if (*s < '0' || *s > '9') return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > 65535) return false;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

// "80,443,8000-8100" (spaces allowed around items). Returns false on any malformed item.
static bool parse_ports(const char *s, uint8_t *bits) {
    for (;;) {
        while (*s == ' ') s++;
        unsigned lo, hi;
        if (!parse_number(&s, &lo)) return false;
        hi = lo;
        if (*s == '-') {
            s++;
            if (!parse_number(&s, &hi)) return false;
        }
        if (lo == 0 || hi < lo) return false;
        for (unsigned p = lo; p <= hi; p++) set_bit(bits, p);
        while (*s == ' ') s++;
        if (*s == '\0') return true;
        if (*s != ',') return false;
        s++;
    }
}

static bool truthy(const char *v) { return v && *v && strcmp(v, "0") != 0 && strcmp(v, "no") != 0; }

bool mz_parse_config(struct mz_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cfg->debug = truthy(getenv(MPTCPIZE_ENV_DEBUG));

    const char *scope = getenv(MPTCPIZE_ENV_SCOPE);
    bool narrowed = true;
    if (!scope || !*scope || strcmp(scope, "all") == 0) {
        cfg->at_connect = cfg->at_listen = true;
        narrowed = false;
    } else if (strcmp(scope, "connect") == 0) {
        cfg->at_connect = true;
    } else if (strcmp(scope, "listen") == 0) {
        cfg->at_listen = true;
    } else {
        snprintf(err, errlen, "%s=%s is not one of all, connect, listen", MPTCPIZE_ENV_SCOPE, scope);
        return false;
    }

    const char *ports = getenv(MPTCPIZE_ENV_PORTS);
    if (ports && *ports) {
        if (!parse_ports(ports, cfg->include)) {
            snprintf(err, errlen, "%s=%s is not a list like 80,443,8000-8100", MPTCPIZE_ENV_PORTS, ports);
            return false;
        }
        cfg->has_include = true;
        narrowed = true;
    }
    const char *excl = getenv(MPTCPIZE_ENV_EXCLUDE_PORTS);
    if (excl && *excl) {
        if (!parse_ports(excl, cfg->exclude)) {
            snprintf(err, errlen, "%s=%s is not a list like 80,443,8000-8100", MPTCPIZE_ENV_EXCLUDE_PORTS, excl);
            return false;
        }
        narrowed = true;
    }
    // Only a narrowed scope needs the port or the connect/listen intent, which socket() cannot see.
    cfg->mode = narrowed ? MZ_LAZY : MZ_EAGER;
    return true;
}

bool mz_port_selected(const struct mz_config *cfg, unsigned port) {
    if (port > 65535) return false;
    if (cfg->has_include && !get_bit(cfg->include, port)) return false;
    return !get_bit(cfg->exclude, port);
}
