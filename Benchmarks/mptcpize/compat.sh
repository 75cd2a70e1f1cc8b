#!/usr/bin/env bash
# Compatibility run: stock programs under mptcpize's three modes, each in a fresh pair of
# network namespaces (client 10.78.0.2 <-> server 10.78.0.1). Prints the table of
# docs/mptcpize.md ("Compatibility"). A cell is "works" when the program did its job (exit 0,
# and for transfers the SHA-256 of the 1 MiB body matched), "MPTCP" when the server namespace's
# MPCapableACKRX counter rose, i.e. both ends spoke MPTCP. The peer of the program under test
# is a known-good MPTCP end (python3 http.server or curl under `mptcpize run`).
#
#   Benchmarks/mptcpize/compat.sh            (root; BUILD_DIR defaults to the debug build)
set -Euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "compat: run as root" >&2; exit 1; }
BUILD_DIR=${BUILD_DIR:-$(cd "$root" && swift build --show-bin-path)}
CLI=$BUILD_DIR/mptcpize-cli
[[ -x $CLI ]] || { echo "compat: $CLI missing: swift build" >&2; exit 1; }

work=$(mktemp -d)
S=10.78.0.1
ns_s=mzcompat$$s
ns_c=mzcompat$$c
cleanup() {
    for ns in "$ns_s" "$ns_c"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap 'cleanup; rm -rf "$work"' EXIT

head -c 1048576 /dev/urandom > "$work/blob"
want=$(sha256sum < "$work/blob" | cut -d' ' -f1)
cat > "$work/static_client.c" <<'C'
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    const char *req = "GET /blob HTTP/1.0\r\n\r\n";
    if (write(s, req, strlen(req)) < 0) return 1;
    char buf[65536]; ssize_t n; int body = 0; char last[4] = {0};
    while ((n = read(s, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (body) { putchar(buf[i]); continue; }
            memmove(last, last + 1, 3); last[3] = buf[i];
            body = memcmp(last, "\r\n\r\n", 4) == 0;
        }
    return 0;
}
C
gcc -static -O2 -o "$work/static_client" "$work/static_client.c"
if command -v go >/dev/null; then
    mkdir -p "$work/goclient"
    cat > "$work/goclient/main.go" <<'GO'
package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	r, err := http.Get(os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	io.Copy(os.Stdout, r.Body)
}
GO
    (cd "$work/goclient" && GO111MODULE=off CGO_ENABLED=0 GOCACHE=$work/gocache go build -o "$work/goclient/goclient" main.go) || true
fi
ssh-keygen -q -t ed25519 -N '' -f "$work/id" && ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
mkdir -p /run/sshd

setup() {
    cleanup
    for ns in "$ns_s" "$ns_c"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
    ip -n "$ns_s" link add eth0 type veth peer name eth0 netns "$ns_c"
    ip -n "$ns_s" addr add $S/24 dev eth0
    ip -n "$ns_c" addr add 10.78.0.2/24 dev eth0
    ip -n "$ns_s" link set eth0 up
    ip -n "$ns_c" link set eth0 up
}
acks() { ip netns exec "$ns_s" awk '/^MPTcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "MPCapableACKRX") c = i; h = 1 } else print $c }' /proc/net/netstat; }
wait_port() { for _ in $(seq 100); do ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0; sleep 0.1; done; return 1; }
sx() { ip netns exec "$ns_s" "$@"; }
cx() { ip netns exec "$ns_c" "$@"; }
good() { [[ $(sha256sum < "$1" | cut -d' ' -f1) == "$want" ]]; }

# wrapper MODE ROLE -> the mptcpize prefix for the program under test
wrapper() {
    case $1 in
    default) echo "$CLI run" ;;
    scoped) [[ $2 == client ]] && echo "$CLI run --scope connect" || echo "$CLI run --scope listen" ;;
    supervisor) echo "$CLI run --seccomp" ;;
    esac
}

python_server() { sx $CLI run /usr/bin/python3 -m http.server 8000 --bind $S --directory "$work" >/dev/null 2>&1 & wait_port "$ns_s" 8000; }
curl_fetch() { cx $CLI run curl -sS --max-time 20 -o "$work/out" "$1"; }

# Each case: setup is done; runs the program under "$W" and returns 0 if it worked.
case_curl() { python_server && cx $W curl -sS --max-time 20 -o "$work/out" http://$S:8000/blob && good "$work/out"; }
case_wget() { python_server && cx $W wget -q -T 20 -O "$work/out" http://$S:8000/blob && good "$work/out"; }
case_python_client() { python_server && cx $W /usr/bin/python3 -c "import urllib.request,sys; open('$work/out','wb').write(urllib.request.urlopen('http://$S:8000/blob').read())" && good "$work/out"; }
case_python_server() { sx $W /usr/bin/python3 -m http.server 8000 --bind $S --directory "$work" >/dev/null 2>&1 & wait_port "$ns_s" 8000 && curl_fetch http://$S:8000/blob && good "$work/out"; }
nginx_conf() {
    cat > "$work/nginx.conf" <<NGX
daemon off; master_process on; worker_processes 1; user root; error_log $work/nginx.err; pid $work/nginx.pid;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  server { listen $1:8080; $2 } }
NGX
}
case_nginx_listen() { nginx_conf $S "root $work;"; sx $W /usr/sbin/nginx -c "$work/nginx.conf" & wait_port "$ns_s" 8080 && curl_fetch http://$S:8080/blob && good "$work/out"; }
case_nginx_proxy() {
    python_server && nginx_conf 127.0.0.1 "location / { proxy_pass http://$S:8000; proxy_connect_timeout 5s; }"
    cx $W /usr/sbin/nginx -c "$work/nginx.conf" & wait_port "$ns_c" 8080 && cx curl -sS --max-time 20 -o "$work/out" http://127.0.0.1:8080/blob && good "$work/out"
}
case_haproxy_proxy() {
    python_server && cat > "$work/haproxy.cfg" <<HAP
global
  maxconn 64
defaults
  mode tcp
  timeout connect 5s
  timeout client 20s
  timeout server 20s
frontend f
  bind 127.0.0.1:8080
  default_backend b
backend b
  server s $S:8000
HAP
    cx $W /usr/sbin/haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 & wait_port "$ns_c" 8080 && cx curl -sS --max-time 20 -o "$work/out" http://127.0.0.1:8080/blob && good "$work/out"
}
sshd_start() {
    cp "$work/id.pub" "$work/authorized_keys"
    $1 /usr/sbin/sshd -D -e -p 2222 -h "$work/hostkey" -o PermitRootLogin=yes -o "AuthorizedKeysFile=$work/authorized_keys" \
        -o StrictModes=no -o UsePAM=no -o ListenAddress=$S >/dev/null 2>&1 &
    wait_port "$ns_s" 2222
}
ssh_fetch() { cx $1 ssh -q -i "$work/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -p 2222 root@$S cat "$work/blob" > "$work/out" && good "$work/out"; }
case_ssh_client() { sshd_start "sx $CLI run" && ssh_fetch "$W"; }
case_sshd() { sshd_start "sx $W" && ssh_fetch "$CLI run"; }
case_iperf3_client() { sx $CLI run iperf3 -s -1 -p 5201 >/dev/null 2>&1 & wait_port "$ns_s" 5201 && cx $W iperf3 -c $S -p 5201 -n 1M >/dev/null; }
case_iperf3_server() { sx $W iperf3 -s -1 -p 5201 >/dev/null 2>&1 & wait_port "$ns_s" 5201 && cx $CLI run iperf3 -c $S -p 5201 -n 1M >/dev/null; }
case_go_client() { [[ -x $work/goclient/goclient ]] || return 2; python_server && cx $W "$work/goclient/goclient" http://$S:8000/blob > "$work/out" && good "$work/out"; }
case_static_client() { python_server && cx $W "$work/static_client" $S 8000 > "$work/out" && good "$work/out"; }

rows=(
    "curl|client|case_curl" "wget|client|case_wget" "python3 urllib client|client|case_python_client"
    "python3 http.server|server|case_python_server" "nginx (listen)|server|case_nginx_listen"
    "nginx (proxy_pass upstream)|client|case_nginx_proxy" "HAProxy (tcp backend)|client|case_haproxy_proxy"
    "OpenSSH client|client|case_ssh_client" "OpenSSH server|server|case_sshd"
    "iperf3 client|client|case_iperf3_client" "iperf3 server|server|case_iperf3_server"
    "Go $(go version 2>/dev/null | awk '{print $3}') net/http client (CGO_ENABLED=0, static)|client|case_go_client"
    "static C client (gcc -static)|client|case_static_client"
)
echo "| program | default | scoped | supervisor |"
echo "|---|---|---|---|"
for row in "${rows[@]}"; do
    IFS='|' read -r name role fn <<<"$row"
    line="| $name |"
    for mode in default scoped supervisor; do
        setup
        W=$(wrapper $mode $role)
        before=$(acks)
        ( $fn ) >/dev/null 2>"$work/err"
        rc=$?
        after=$(acks)
        if ((rc == 2)); then cell="not run"
        elif ((rc == 0)); then cell="works, $( ((after > before)) && echo MPTCP || echo TCP)"
        elif grep -q "need the preload" "$work/err"; then cell="refused by the CLI (--scope needs the preload)"
        else cell="FAILS"
        fi
        line+=" $cell |"
    done
    echo "$line"
done
