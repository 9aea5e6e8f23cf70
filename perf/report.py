#!/usr/bin/env python3
"""Turns perf/run's measurements into the markdown tables of perf/RESULTS.md.

usage: perf/report.py OUT_DIR MACHINE RUNS SECONDS QUICK"""
import datetime, glob, json, os, re, statistics, sys

out, machine, runs, secs, quick = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
rows = {}
for path in sorted(glob.glob(f"{out}/*.jsonl")):
    for line in open(path):
        d = json.loads(line)
        rows.setdefault(d["name"], []).append(d)


def stat(name, key):
    v = [r[key] for r in rows.get(name, []) if key in r]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None


def mpps(name):
    s = stat(name, "mpps")
    return s[0] if s else None


def fmt(s, digits=2):
    return "—" if s is None else f"{s[0]:.{digits}f} ({s[1]:.{digits}f}–{s[2]:.{digits}f})"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


print(f"## {datetime.date.today()} — performance harness (`perf/run{' --quick' if quick else ''}`)\n")
print(f"Machine: {machine}. {runs} runs of {secs} s per figure, interleaved; median (min–max).\n")
for topo, title in (("A", "A: pcap infinite_rx → forwarder (core 1) → net_null, one process"),
                    ("B", "B: testpmd replays into net_memif (core 0) → forwarder (core 1) → net_null")):
    order = ["testpmd", "l3fwd", "anygate-plain", "anygate-decap", "anygate-encap", "anygate-mix",
             "anygate-full", "anygate-plain-2w", "anygate-full-2w"]
    names = sorted((n for n in rows if n.startswith(topo + "-")),
                   key=lambda n: order.index(n[2:]) if n[2:] in order else len(order))
    if not names:
        continue
    ref_l3, ref_tp = mpps(f"{topo}-l3fwd"), mpps(f"{topo}-testpmd")
    print(f"### Topology {title}\n")
    print("| configuration | mix | workers | Mpps | vs l3fwd-LPM | vs testpmd io | cycles/pkt in the worker | busy loop p50 / p99 / p99.9 (µs) | drops |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in names:
        r = rows[n][0]
        cpp = stat(n, "cycles_per_packet")
        lat = [x["loop_cycles"] for x in rows[n] if "loop_cycles" in x]
        hz = rows[n][0].get("tsc_hz")
        lat_s = "—"
        if lat and hz:
            q = [statistics.median(l[k] for l in lat) * 1e6 / hz for k in ("p50", "p99", "p99_9")]
            lat_s = " / ".join(f"{x:.2f}" for x in q)
        drops = sum(x.get("drop_total", 0) for x in rows[n])
        rx = sum(x.get("rx_total", 0) for x in rows[n])
        reasons = {}
        for x in rows[n]:
            for k, v in x.get("drops", {}).items():
                reasons[k] = reasons.get(k, 0) + v
        why = ", ".join(f"{k}" for k in sorted(reasons))
        drop_s = "—" if r["forwarder"] in ("testpmd", "l3fwd") else f"{drops} of {rx}" + (f" ({why})" if why else "")
        print(f"| {r['forwarder']} | {r['mix']} | {r['workers']} | {fmt(stat(n, 'mpps'))} | {ratio(mpps(n), ref_l3)} "
              f"| {ratio(mpps(n), ref_tp)} | {fmt(cpp, 0)} | {lat_s} | {drop_s} |")
    print()
    one, two = mpps(f"{topo}-anygate-plain"), mpps(f"{topo}-anygate-plain-2w")
    if one and two:
        print(f"Two workers against one (plain): {two / one:.2f}x; full pipeline: "
              f"{ratio(mpps(f'{topo}-anygate-full-2w'), mpps(f'{topo}-anygate-full'))}.\n")

paths = []
for p in ("plain", "decap", "encap"):
    f = f"{out}/path-{p}.txt"
    cg = f"{out}/cg-{p}.log"
    if os.path.exists(f) and os.path.exists(cg):
        cyc = re.search(r"([\d.]+) cyc", open(f).read())
        ir = re.search(r"Collected : (\d+)", open(cg).read())
        if cyc and ir:
            paths.append((p, float(cyc.group(1)), int(ir.group(1)) / (1000 * 32)))
if paths:
    print("### In-memory pipeline per path (no NIC, one burst of 32 frames repeated)\n")
    print("| path | TSC cycles/pkt (median) | callgrind instructions/pkt |")
    print("| --- | --- | --- |")
    for p, c, i in paths:
        print(f"| {p} | {c:.1f} | {i:.1f} |")
    print()
stages = f"{out}/stages.tsv"
stage_rows = [l.rstrip("\n").split("\t") for l in open(stages)] if os.path.exists(stages) else []
if stage_rows:
    print("### Cycles per packet per pipeline stage (perf/benches/stages.rs)\n")
    print("The full-pipeline capture through the in-memory pipeline under a ladder of configs, each "
          "adding one stage; a stage's cost is its rung minus the rung below (TSC cycles per packet, "
          "8192 flows, bursts of 32).\n")
    print("| rung | cycles/pkt (median, min–max) | added by the stage |")
    print("| --- | --- | --- |")
    for name, cum, added, lo, hi in stage_rows:
        print(f"| {name} | {cum} ({lo}–{hi}) | {float(added):+.1f} |")
    print()
sizes = f"{out}/lpm-sizes.txt"
if os.path.exists(sizes):
    print("### Lookup cost against table size (dpdk-test-fib's random table and addresses)\n")
    print("| routes | rte_lpm cycles/lookup | anygate DIR-24-8 bulk cycles/lookup | speed vs rte_lpm |")
    print("| --- | --- | --- | --- |")
    for line in open(sizes):
        f = line.split()
        if len(f) == 3:
            print(f"| {int(f[0]):,} | {float(f[1]):.1f} | {float(f[2]):.1f} | {float(f[1]) / float(f[2]):.2f}x |")
    print()

# Data for perf/plots.sh (gnuplot): one file per plot.
os.makedirs(f"{out}/plots", exist_ok=True)
with open(f"{out}/plots/mpps.dat", "w") as f:
    for topo in ("A", "B"):
        for n in rows:
            if n.startswith(topo + "-") and mpps(n) is not None:
                s = stat(n, "mpps")
                f.write(f"\"{n}\" {s[0]:.3f} {s[1]:.3f} {s[2]:.3f}\n")
hz = next((r[0]["tsc_hz"] for r in rows.values() if r and "tsc_hz" in r[0]), None)
with open(f"{out}/plots/cycles.dat", "w") as f:
    for n in rows:
        if n.startswith("A-") and "2w" not in n:
            s = stat(n, "cycles_per_packet")
            if s is None and hz and mpps(n):
                # References run one core flat out: cycles per packet is the TSC rate over the rate.
                s = (hz / (mpps(n) * 1e6),)
            if s:
                f.write(f"\"{n[2:]}\" {s[0]:.1f}\n")
if stage_rows:
    with open(f"{out}/plots/stages.dat", "w") as f:
        for name, cum, added, lo, hi in stage_rows:
            f.write(f"\"{name}\" {max(float(added), 0):.1f} {cum}\n")
if os.path.exists(sizes) and hz:
    with open(f"{out}/plots/lookup.dat", "w") as f:
        for line in open(sizes):
            x = line.split()
            if len(x) == 3:
                f.write(f"{x[0]} {hz / float(x[1]) / 1e6:.1f} {hz / float(x[2]) / 1e6:.1f}\n")
