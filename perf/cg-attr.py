#!/usr/bin/env python3
"""Attributes a callgrind profile to the source files the code came from, inlined code
included (callgrind's fi=/fe= records), so that a stage inlined into its caller still shows
as its own file: instructions, L1 and LL misses and branch mispredicts per packet.

usage: perf/cg-attr.py CALLGRIND_OUT PACKETS [--by file|fn] [--top N]

CALLGRIND_OUT is from `valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes
--dump-line=yes` (the default); PACKETS is the number of packets the collected part saw.
Self cost only: a call's inclusive cost is skipped, so every instruction counts once.
"""
import collections
import re
import sys


def parse(path):
    names = {"fl": {}, "fn": {}}
    events = []
    by_file = collections.defaultdict(lambda: None)
    by_fn = collections.defaultdict(lambda: None)
    fl = fi = fn = None
    skip_next = False

    def name(kind, v):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", v)
        if not m:
            return v
        table = names["fn" if kind == "fn" else "fl"]
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), v)

    def add(table, key, vals):
        cur = table[key]
        if cur is None:
            cur = table[key] = [0] * len(events)
        for k, x in enumerate(vals):
            cur[k] += x

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                vals = [int(x) for x in parts[1:]]
                vals += [0] * (len(events) - len(vals))
                add(by_file, fi or fl, vals)
                add(by_fn, fn, vals)
                continue
            if "=" not in line and not line.startswith("events:"):
                continue
            key, _, v = line.partition("=") if "=" in line else line.partition(":")
            if line.startswith("events:"):
                events = line.split(":", 1)[1].split()
            elif key == "fl":
                fl, fi = name("fl", v), None
            elif key in ("fi", "fe"):
                fi = name("fl", v)
            elif key == "fn":
                fn, fi = name("fn", v), None
            elif key in ("cfl", "cfi"):
                name("fl", v)
            elif key == "cfn":
                name("fn", v)
            elif key == "calls":
                skip_next = True
    return events, by_file, by_fn


def short(path):
    m = re.search(r"/(library|rustc/[0-9a-f]+/library)/(.*)", path)
    if m:
        return "std:" + m.group(2)
    for root in ("/src/", "/perf/", "/dpdk-sys/"):
        if root in path:
            return path[path.index(root) + 1 :]
    return path


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    by = args[args.index("--by") + 1] if "--by" in args else "file"
    top = int(args[args.index("--top") + 1]) if "--top" in args else 40
    events, by_file, by_fn = parse(args[0])
    n = float(args[1])
    table = by_file if by == "file" else by_fn
    ix = {e: k for k, e in enumerate(events)}

    def ev(v, *names):
        return sum(v[ix[e]] for e in names if e in ix)

    rows = []
    for key, v in table.items():
        rows.append(
            (
                short(key or "?") if by == "file" else (key or "?"),
                ev(v, "Ir"),
                ev(v, "I1mr", "D1mr", "D1mw"),
                ev(v, "ILmr", "DLmr", "DLmw"),
                ev(v, "Bcm"),
                ev(v, "Bim"),
            )
        )
    rows.sort(key=lambda r: -r[1])
    tot = [sum(r[k] for r in rows) for k in range(1, 6)]
    print(f"| {by} | instr/pkt | L1 miss/pkt | LL miss/pkt | cond. mispredicts/pkt | indirect mispredicts/pkt |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, r in enumerate(rows):
        # The top N by instructions, and any other row with misses or mispredicts to show.
        if not (k < top and r[1] / n >= 0.05) and (r[3] + r[4] + r[5]) / n < 0.05:
            continue
        print(f"| {r[0]} | {r[1]/n:.1f} | {r[2]/n:.2f} | {r[3]/n:.3f} | {r[4]/n:.3f} | {r[5]/n:.3f} |")
    print(f"| **total** | **{tot[0]/n:.1f}** | **{tot[1]/n:.2f}** | **{tot[2]/n:.3f}** | **{tot[3]/n:.3f}** | **{tot[4]/n:.3f}** |")


if __name__ == "__main__":
    main()
