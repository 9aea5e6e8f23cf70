#!/usr/bin/env python3
"""Writes one firewall rule set in two languages, plus traffic: rte_acl's ClassBench format
for dpdk-test-acl, and anygate's rule expressions. Rules have realistic shape: a source
prefix (often any), a customer destination prefix, a port or port range, TCP or UDP.

usage: perf/acl-rules.py N_RULES OUT_DIR [N_TRACES]"""
import ipaddress, os, random, sys

n = int(sys.argv[1])
out = sys.argv[2]
n_traces = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
rnd = random.Random(1234 + n)
os.makedirs(out, exist_ok=True)

def prefix(base, lens):
    l = rnd.choice(lens)
    a = (base | rnd.getrandbits(32 - 8)) & ((0xFFFFFFFF << (32 - l)) & 0xFFFFFFFF) if l else 0
    return a, l

rules = []
for i in range(n):
    src = (0, 0) if rnd.random() < 0.5 else prefix(rnd.choice([0xC6000000, 0x2D000000, 0x67000000]), [8, 12, 16, 24])
    dst = prefix(0xC0A80000 & 0xFF000000 if rnd.random() < 0.5 else 0x0A000000, [16, 20, 24])
    if rnd.random() < 0.6:
        p = rnd.choice([22, 25, 53, 80, 123, 443, 3306, 5060, 8080, 11211]); dp = (p, p)
    else:
        lo = rnd.randrange(1024, 60000); dp = (lo, lo + rnd.randrange(0, 2000))
    sp = (0, 65535) if rnd.random() < 0.8 else (1024, 65535)
    proto = rnd.choice([6, 17])
    rules.append((src, dst, sp, dp, proto))

ip = lambda a: str(ipaddress.IPv4Address(a))
with open(f"{out}/rules.acl", "w") as f:
    for (s, sl), (d, dl), sp, dp, pr in rules:
        f.write(f"@{ip(s)}/{sl} {ip(d)}/{dl} {sp[0]} : {sp[1]} {dp[0]} : {dp[1]} {pr}/0xff\n")
with open(f"{out}/rules.expr", "w") as f:
    for (s, sl), (d, dl), sp, dp, pr in rules:
        l4 = "tcp" if pr == 6 else "udp"
        terms = []
        if sl:
            terms.append(f"ip.src in {{{ip(s)}/{sl}}}")
        terms.append(f"ip.dst in {{{ip(d)}/{dl}}}")
        if sp != (0, 65535):
            terms.append(f"{l4}.srcport in {{{sp[0]}..{sp[1]}}}")
        terms.append(f"{l4}.dstport in {{{dp[0]}..{dp[1]}}}" if dp[0] != dp[1] else f"{l4}.dstport eq {dp[0]}")
        f.write(" and ".join(terms) + "\n")
with open(f"{out}/trace.acl", "w") as f:
    for _ in range(n_traces):
        if rules and rnd.random() < 0.5:   # half the traffic aimed at some rule
            (s, sl), (d, dl), sp, dp, pr = rnd.choice(rules)
            src = s | rnd.getrandbits(32 - sl) if sl else rnd.getrandbits(32)
            dst = d | rnd.getrandbits(32 - dl)
            f.write(f"{src} {dst} {rnd.randint(sp[0], sp[1])} {rnd.randint(dp[0], dp[1])} {pr}\n")
        else:
            f.write(f"{rnd.getrandbits(32)} {0xC0A80000 | rnd.getrandbits(16)} {rnd.randrange(65536)} {rnd.randrange(65536)} {rnd.choice([6, 17])}\n")
print(f"{n} rules, {n_traces} traces in {out}")
