#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*): frames for every
pipeline path of fuzz_targets/pipeline.rs's config, the vendor's firewall rules, and configs."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
WAN, LAN, PEER = bytes.fromhex("020000000001"), bytes.fromhex("020000000101"), bytes.fromhex("020000000055")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip(src, dst, proto, payload, ttl=64, df=True):
    a = bytes(map(int, src.split(".")))
    b = bytes(map(int, dst.split(".")))
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000 if df else 0, ttl, proto, 0, a, b)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def udp(src, dst, sport, dport, data=b"x" * 18):
    return ip(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data)


def tcp_syn(src, dst, mss=1460):
    opts = struct.pack("!BBH", 2, 4, mss)
    h = struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, (24 // 4) << 4, 0x02, 65535, 0, 0) + opts
    a = bytes(map(int, src.split(".")))
    b = bytes(map(int, dst.split(".")))
    c = csum(a + b + struct.pack("!BBH", 0, 6, len(h)) + h)
    h = h[:16] + struct.pack("!H", c) + h[18:]
    return ip(src, dst, 6, h)


def eth(dst, payload, ethertype=0x0800, src=PEER):
    return dst + src + struct.pack("!H", ethertype) + payload


def arp_request(target):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + PEER + bytes([192, 0, 2, 77]) + b"\0" * 6 + bytes(map(int, target.split(".")))
    return eth(b"\xff" * 6, body, 0x0806)


def gre(inner):
    return struct.pack("!HH", 0, 0x0800) + inner


def burst(port, frames):
    return bytes([port]) + b"".join(struct.pack("!H", len(f)) + f for f in frames)


def write(target, name, data):
    with open(os.path.join(HERE, "corpus", target, "seed-" + name), "wb") as f:
        f.write(data)


frames = {
    "plain": eth(WAN, udp("198.51.100.1", "172.16.9.9", 4000, 53)),
    "arp-gateway": eth(WAN, udp("198.51.100.1", "172.16.5.1", 4000, 53)),
    "connected": eth(WAN, udp("198.51.100.1", "10.0.0.77", 4000, 53)),
    "gre-decap": eth(WAN, ip("198.51.100.20", "203.0.113.10", 47, gre(udp("192.168.10.5", "8.8.8.8", 5000, 53)))),
    "ipip-decap": eth(WAN, ip("198.51.100.21", "203.0.113.10", 4, udp("192.168.20.5", "8.8.8.8", 5000, 53))),
    "encap-syn": eth(WAN, tcp_syn("198.51.100.1", "192.168.10.5")),
    "ecmp": eth(WAN, udp("198.51.100.1", "192.168.30.5", 4001, 443)),
    "ttl1": eth(WAN, ip("198.51.100.1", "172.16.9.9", 17, struct.pack("!HHHH", 4000, 53, 26, 0) + b"x" * 18, ttl=1)),
    "too-big": eth(WAN, udp("198.51.100.1", "172.16.9.9", 4000, 53, b"y" * 1200)),
    "tunnel-to-tunnel": eth(WAN, ip("198.51.100.20", "203.0.113.10", 47, gre(tcp_syn("192.168.10.5", "192.168.20.9")))),
    "fw-block": eth(WAN, ip("198.51.100.20", "203.0.113.10", 47, gre(udp("192.168.10.5", "8.8.8.8", 5000, 7)))),
    "arp": arp_request("192.0.2.1"),
}
for n, f in frames.items():
    write("pipeline", n, burst(0, [f]))
    write("wire", n, f)
write("pipeline", "mixed-burst", burst(0, list(frames.values())))
write("pipeline", "lan-side", burst(1, [eth(LAN, udp("10.0.0.50", "172.16.9.9", 4000, 53)), eth(LAN, tcp_syn("10.0.0.50", "192.168.10.5"))]))

rules = [
    ("allow", "ip.src in {192.0.2.0/24} and tcp.dstport in {22 80 443}"),
    ("block", "ip.proto == \"icmp\" and icmp.type != 0 and icmp.type != 8"),
    ("skip", "anygate.tunnel == \"acme\""),
    ("block", "tcp.flags.syn and not tcp.flags.ack and tcp.dstport in $ports"),
    ("allow", "udp.srcport in {53 123} or (udp and ip.dst in $nets)"),
    ("block", "ip.ttl lt 5 xor ip.len > 1400"),
    ("allow", "anygate.direction == \"egress\""),
]
text = "\n".join(f"{a} {e}" for a, e in rules).encode()
pkt = bytes(range(21))
write("firewall", "vendor-like", text + b"\0" + pkt * 4)
for i, (a, e) in enumerate(rules):
    write("firewall", f"rule{i}", f"{a} {e}".encode() + b"\0" + pkt)

with open(os.path.join(HERE, "..", "config", "demo.toml"), "rb") as f:
    write("config", "demo", f.read())
with open(os.path.join(HERE, "fuzz_targets", "pipeline.rs")) as f:
    src = f.read()
write("config", "pipeline", src.split('r#"', 1)[1].split('"#', 1)[0].encode())

# ctl_request seeds are JSON lines, written by hand in fuzz/corpus/ctl_request/seed-*.
