#!/usr/bin/env python3
"""A host without the key, doing what it can to a mesh node: holding TCP connections to
its port and flooding the LAN with mDNS records. Used by tests/it/strangers.rs; standard
library only.

    flood.py TARGET_IP PORT CONNECTIONS RECORDS SECONDS

Opens CONNECTIONS TCP connections to TARGET_IP:PORT (sending nothing), sends RECORDS mDNS
records for made-up `_mesh._tcp` instances over SECONDS (half junk, half well-formed with
random peer ids and another key), and reports, as JSON on stdout, how many of the connections
the node had closed a second after they were made, and how many it still held.
"""
import json
import os
import socket
import struct
import sys
import time

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def peer_id() -> str:
    # An identity multihash of a protobuf Ed25519 public key: the shape of libp2p ids.
    return b58(bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + os.urandom(32))


def name(*labels: str) -> bytes:
    out = b""
    for label in labels:
        for part in label.split("."):
            if part:
                raw = part.encode()[:63]
                out += bytes([len(raw)]) + raw
    return out + b"\0"


def record(rname: bytes, rtype: int, rdata: bytes, flush: bool = False) -> bytes:
    cls = 0x8001 if flush else 0x0001
    return rname + struct.pack("!HHIH", rtype, cls, 4500, len(rdata)) + rdata


def txt(pairs) -> bytes:
    out = b""
    for k, v in pairs:
        item = f"{k}={v}".encode()[:255]
        out += bytes([len(item)]) + item
    return out


def mdns_packet(i: int, own_ip: str) -> bytes:
    inst = f"stranger-{os.getpid()}-{i}"
    full = name(inst, "_mesh._tcp.local")
    host = name(f"{inst}.local")
    if i % 2:
        pairs = [("id", "junk" * 8), ("pv", "x"), ("kf", "z" * 300)]
    else:
        # Well-formed, of this release's wire protocol (PROTOCOL_VERSION in
        # src/protocol/membership.rs) and another key: a record of another version is
        # reported as one to upgrade, not as a different key.
        pairs = [("id", peer_id()), ("pv", "5"), ("kf", "0123456789abcdef"), ("v", "9.9.9"), ("name", inst)]
    answers = [
        record(name("_mesh._tcp.local"), 12, full),
        record(full, 33, struct.pack("!HHH", 0, 0, 4877) + host, flush=True),
        record(full, 16, txt(pairs), flush=True),
        record(host, 1, socket.inet_aton(own_ip), flush=True),
    ]
    return struct.pack("!HHHHHH", 0, 0x8400, 0, len(answers), 0, 0) + b"".join(answers)


def is_closed(s: socket.socket) -> bool:
    """Whether the node closed this connection: end-of-file or a reset after whatever it
    sent (a node in the pnet handshake sends its nonce, then waits for ours)."""
    s.setblocking(False)
    try:
        while True:
            if s.recv(4096) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def main() -> None:
    target, port, conns, records, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    held = []
    refused = 0
    for _ in range(conns):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((target, port))
            held.append(s)
        except OSError:
            refused += 1
            s.close()
    # Give the node a moment to turn away what is over its bounds, then see what it holds.
    time.sleep(1.0)
    closed = sum(1 for s in held if is_closed(s))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    own_ip = (probe.connect((target, 9)), probe.getsockname()[0])[1]
    probe.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    start = time.monotonic()
    for i in range(records):
        udp.sendto(mdns_packet(i, own_ip), ("224.0.0.251", 5353))
        ahead = start + seconds * (i + 1) / records - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    print(json.dumps({"connected": len(held), "refused": refused, "closed": closed, "open": len(held) - closed}))
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
