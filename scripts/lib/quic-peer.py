#!/usr/bin/env python3
"""A QUIC download over a real QUIC stack (aioquic), for the UDP tests and Benchmarks/udp.sh.

  quic-peer.py serve --host H --port P --cert C --key K
  quic-peer.py fetch --host H --port P --size BYTES [--timeout S]

The server answers a stream carrying "GET <bytes>" with that many bytes of a fixed
pseudo-random sequence (seeded), then ends the stream. The client prints one JSON line:
bytes, sha256, whether it matches the sequence computed locally, seconds, Mbit/s.
"""
import argparse, asyncio, hashlib, json, random, ssl, sys, time

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived, ConnectionTerminated

ALPN = ["mptcp-relay-test"]
SEED = 23
# Flow-control windows as browsers set them (Chrome: 15 MB per connection): aioquic's 1 MB
# default would cap a download at 1 MB per round trip, whatever the path.
WINDOW = 16 * 1024 * 1024


def payload(size):
    return random.Random(SEED).randbytes(size)


class Server(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.requests = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            buf = self.requests.get(event.stream_id, b"") + event.data
            self.requests[event.stream_id] = buf
            if event.end_stream:
                size = int(buf.split()[1])
                self._quic.send_stream_data(event.stream_id, payload(size), end_stream=True)
                self.transmit()


class Client(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.done = asyncio.get_event_loop().create_future()
        self.hash = hashlib.sha256()
        self.received = 0

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            self.hash.update(event.data)
            self.received += len(event.data)
            if event.end_stream and not self.done.done():
                self.done.set_result(True)
        elif isinstance(event, ConnectionTerminated) and not self.done.done():
            self.done.set_result(False)


async def run_server(a):
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN, congestion_control_algorithm=a.cc,
                               max_data=WINDOW, max_stream_data=WINDOW, max_datagram_size=a.datagram)
    config.load_cert_chain(a.cert, a.key)
    await serve(a.host, a.port, configuration=config, create_protocol=Server)
    print("listening", flush=True)
    await asyncio.Future()


async def run_fetch(a):
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, verify_mode=ssl.CERT_NONE,
                               congestion_control_algorithm=a.cc, idle_timeout=a.timeout,
                               max_data=WINDOW, max_stream_data=WINDOW, max_datagram_size=a.datagram)
    start = time.monotonic()
    async with connect(a.host, a.port, configuration=config, create_protocol=Client) as client:
        stream = client._quic.get_next_available_stream_id()
        client._quic.send_stream_data(stream, b"GET %d" % a.size, end_stream=True)
        client.transmit()
        ok = await asyncio.wait_for(client.done, a.timeout)
        seconds = time.monotonic() - start
    expected = hashlib.sha256(payload(a.size)).hexdigest()
    digest = client.hash.hexdigest()
    print(json.dumps({"bytes": client.received, "sha256": digest, "intact": ok and digest == expected and client.received == a.size,
                      "seconds": round(seconds, 3), "mbit": round(client.received * 8 / seconds / 1e6, 1)}))
    return 0 if digest == expected else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "fetch"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--size", type=int, default=30_000_000)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--cc", default="cubic")
    # The most a 1500-byte path carries (1500 - 20 IPv4 - 8 UDP); fewer packets per byte
    # keeps the pure-Python stack from being the bottleneck.
    p.add_argument("--datagram", type=int, default=1472)
    a = p.parse_args()
    if a.mode == "serve":
        asyncio.run(run_server(a))
    else:
        sys.exit(asyncio.run(run_fetch(a)))


if __name__ == "__main__":
    main()
