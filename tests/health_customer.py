#!/usr/bin/env python3
"""The customer side of the health-check test (scripts/netns-health-test).

The kernel here has no GRE module, so this stands in for a customer router on an AF_PACKET
socket: for each GRE or IP-in-IP packet from the edge it does what a router that
decapsulates and routes the inner packet back into the tunnel would do to a health probe of
type `reply` (the inner packet comes back unchanged, in the reverse encapsulation). It also
sends live traffic toward the customer prefix through the edge and records which tunnel
each packet came back in.

Signals: SIGHUP starts the traffic, SIGUSR1 breaks tunnel T1 (nothing is answered or delivered on it), SIGUSR2 heals
it, SIGTERM stops the traffic, waits for stragglers and writes the report (JSON) to argv[3].

usage: health_customer.py IFACE EDGE_MAC REPORT RATE_PPS
"""
import json
import signal
import socket
import struct
import sys
import threading
import time

IFACE, EDGE_MAC, REPORT, RATE = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
OUR_MAC = bytes.fromhex("02cc00000002")
EDGE = bytes.fromhex(EDGE_MAC.replace(":", ""))
TUNNELS = {socket.inet_aton("198.51.100.20"): "T1", socket.inet_aton("198.51.100.21"): "T2"}
SRC = socket.inet_aton("100.64.0.77")
MAGIC = b"AGHT"
FLOWS = 16
PACKET_OUTGOING = 4

state = {"broken": False, "stop": False, "traffic": False, "events": []}
seen = {}  # seq -> (tunnel, time, delivered)
probes = {"T1": 0, "T2": 0, "T1_unanswered": 0}
sent = []  # (seq, time)
lock = threading.Lock()


def on_signal(sig, _frame):
    now = time.monotonic()
    if sig == signal.SIGUSR1:
        state["broken"] = True
        state["events"].append(("break", now))
    elif sig == signal.SIGHUP:
        state["traffic"] = True
    elif sig == signal.SIGUSR2:
        state["broken"] = False
        state["events"].append(("heal", now))
    else:
        state["stop"] = True


for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
    signal.signal(s, on_signal)

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
sock.bind((IFACE, 0))
sock.settimeout(0.01)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp_frame(seq):
    flow = seq % FLOWS
    payload = MAGIC + struct.pack("!I", seq) + bytes(24)
    dst = socket.inet_aton(f"10.50.{flow}.9")
    udp = struct.pack("!HHHH", 40000 + flow, 9000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0, SRC, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return EDGE + OUR_MAC + b"\x08\x00" + ip + udp


def sender():
    gap = 1.0 / RATE
    seq = 0
    while not state["traffic"] and not state["stop"]:
        time.sleep(0.005)
    nxt = time.monotonic()
    while not state["stop"]:
        now = time.monotonic()
        if now < nxt:
            time.sleep(min(nxt - now, 0.005))
            continue
        with lock:
            sent.append((seq, now))
        sock.send(udp_frame(seq))
        seq += 1
        nxt += gap


def inner_of(frame):
    """(tunnel, outer_ip_offset, inner_offset) for a tunnelled frame from the edge."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    tunnel = TUNNELS.get(frame[30:34])
    if tunnel is None:
        return None
    at = 14 + ihl
    if proto == 47:
        flags = frame[at]
        glen = 4 + 4 * bool(flags & 0x80) + 4 * bool(flags & 0x20) + 4 * bool(flags & 0x10)
        if frame[at + 2:at + 4] != b"\x08\x00":
            return None
        at += glen
    elif proto != 4:
        return None
    return tunnel, at


def mirror(frame):
    """The same inner packet, back through the tunnel the other way."""
    f = bytearray(frame)
    f[0:6], f[6:12] = frame[6:12], frame[0:6]
    # Swapping source and destination leaves the header checksum as it was.
    f[26:30], f[30:34] = frame[30:34], frame[26:30]
    return bytes(f)


threading.Thread(target=sender, daemon=True).start()
print("customer: ready", file=sys.stderr, flush=True)
stop_at = None
while True:
    if state["stop"] and stop_at is None:
        stop_at = time.monotonic() + 0.5
    if stop_at is not None and time.monotonic() > stop_at:
        break
    try:
        frame, addr = sock.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == PACKET_OUTGOING:
        continue
    got = inner_of(frame)
    if got is None:
        continue
    tunnel, at = got
    broken = tunnel == "T1" and state["broken"]
    inner_proto = frame[at + 9]
    ihl = (frame[at] & 0x0F) * 4
    if inner_proto == 1 and frame[at + ihl] == 0:
        if broken:
            probes["T1_unanswered"] += 1
        else:
            probes[tunnel] += 1
            sock.send(mirror(frame))
    elif inner_proto == 17 and frame[at + ihl + 8:at + ihl + 12] == MAGIC:
        (seq,) = struct.unpack("!I", frame[at + ihl + 12:at + ihl + 16])
        seen.setdefault(seq, (tunnel, time.monotonic(), not broken))

with open(REPORT, "w") as f:
    json.dump({"sent": sent, "seen": seen, "events": state["events"], "probes": probes}, f)
