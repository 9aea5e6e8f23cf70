#!/usr/bin/env python3
"""Runs one forwarder for SECONDS of forwarding and prints one JSON line with its rate.

usage: perf/measure.py KIND SECONDS OUT_PORT -- COMMAND...
KIND: testpmd | l3fwd | anygate. OUT_PORT: the port index whose transmitted packets count.

Each tool reports differently; the rate always excludes start-up:
- testpmd (--stats-period 1): the median of the output port's Tx-pps lines after the first
  (which counts from start-up);
- anygate (--stats-interval 1 --stats-json): the median over one-second intervals, after the
  first report, of packets sent divided by elapsed uptime; plus cycles per packet over the same
  intervals (busy loops only) and, from the final report, the busy-loop latency quantiles;
- l3fwd (built by perf/run with an exit-time counter print): packets sent on the output port
  divided by the time from "entering main loop" to the SIGINT that stops it.
"""
import json, re, signal, statistics, subprocess, sys, threading, time

kind, seconds, out_port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
lines, marks = [], {}


# The line that says forwarding has begun: measuring starts there, so start-up (EAL, loading
# a 500k-route config) never counts.
MARKER = {"l3fwd": "entering main loop", "anygate": '"event":"stats"',
          "testpmd": "NIC statistics for port"}[kind]


def reader():
    for line in proc.stdout:
        lines.append(line)
        if MARKER in line and "loop" not in marks:
            marks["loop"] = time.monotonic()


t = threading.Thread(target=reader, daemon=True)
t.start()
start = time.monotonic()
while "loop" not in marks and proc.poll() is None and time.monotonic() - start < 120:
    time.sleep(0.01)
t0 = marks.get("loop", time.monotonic())
# Periodic reporters get one more second, so that SECONDS whole intervals follow the marker.
time.sleep(max(0.0, t0 + seconds + (kind != "l3fwd") + 0.2 - time.monotonic()))
stopped = time.monotonic()
proc.send_signal(signal.SIGINT)
try:
    proc.wait(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
t.join(timeout=5)
text = "".join(lines)
res = {"kind": kind, "seconds": seconds}

if kind == "testpmd":
    # Per stats period, one block per port in port order: take the OUT_PORT-th Tx-pps of each.
    blocks = re.split(r"#+ NIC statistics for port (\d+)", text)
    pps = [int(m.group(1)) for i in range(1, len(blocks) - 1, 2) if int(blocks[i]) == out_port
           for m in [re.search(r"Tx-pps:\s+(\d+)", blocks[i + 1])] if m]
    pps = pps[1:]  # the first block counts from start-up
    if pps:
        res["mpps"] = statistics.median(pps) / 1e6
elif kind == "l3fwd":
    m = re.search(rf"AGSTATS port {out_port} ipackets \d+ opackets (\d+)", text)
    if m and "loop" in marks:
        res["mpps"] = int(m.group(1)) / (stopped - marks["loop"]) / 1e6
elif kind == "anygate":
    reports = [json.loads(l) for l in lines if l.startswith("{") and '"event":"stats"' in l]
    periodic = [r for r in reports if not r["final"]]
    rates, cpp = [], []
    for a, b in zip(periodic, periodic[1:]):
        dt = b["uptime_s"] - a["uptime_s"]
        sent = b["ports"][out_port]["tx_packets"] - a["ports"][out_port]["tx_packets"]
        rx = b["rx_total"] - a["rx_total"]
        if dt > 0:
            rates.append(sent / dt)
        if rx > 0:
            cpp.append((b["busy_cycles"] - a["busy_cycles"]) / rx)
    if rates:
        res["mpps"] = statistics.median(rates) / 1e6
    if cpp:
        res["cycles_per_packet"] = statistics.median(cpp)
    final = [r for r in reports if r["final"]]
    if final:
        f = final[-1]
        res["drop_total"] = f["drop_total"]
        res["rx_total"] = f["rx_total"]
        res["drops"] = {k: v for k, v in f["drops"].items() if v}
        res["mempool_full"] = f.get("mempool", {}).get("size") == f.get("mempool", {}).get("available")
        if "loop_cycles" in f:
            res["loop_cycles"] = f["loop_cycles"]
        res["tsc_hz"] = f["tsc_hz"]
if "mpps" not in res:
    res["error"] = "no rate found; last output:\n" + "".join(lines[-15:])
print(json.dumps(res))
