#!/usr/bin/env python3
"""Derives a real-world IPv4 prefix table (~494k networks) from the geoip2fast PyPI package's
ASN data, at benchmark time (the data is never committed). Writes dpdk-test-fib's formats:
ROUTES gets "a.b.c.d/len nexthop" lines, IPS one address per line drawn from the prefixes.

usage: perf/real-table.py GEOIP2FAST_ASN_DAT_GZ ROUTES IPS [N_IPS]"""
import gzip, ipaddress, pickle, random, sys

src, routes_path, ips_path = sys.argv[1:4]
n_ips = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
data = pickle.load(gzip.open(src))[3]
# The package keeps network start addresses and prefix lengths as parallel chunked lists.
lists = [x for x in data if isinstance(x, list) and x and isinstance(x[0], list)]
flat = [sum(l, []) for l in lists]
starts = next(f for f in flat if max(f) > 2**24)
lens = next(f for f in flat if len(f) == len(starts) and max(f) <= 32 and f is not starts)
rnd = random.Random(7)
routes = set()
for a, l in zip(starts, lens):
    if 1 <= l <= 32:
        net = ipaddress.IPv4Network((a, l), strict=False)
        routes.add((int(net.network_address), l))
routes = sorted(routes)
with open(routes_path, "w") as f:
    for a, l in routes:
        f.write(f"{ipaddress.IPv4Address(a)}/{l} {rnd.randrange(1, 1 << 20)}\n")
with open(ips_path, "w") as f:
    for _ in range(n_ips):
        a, l = routes[rnd.randrange(len(routes))]
        f.write(f"{ipaddress.IPv4Address(a | rnd.getrandbits(32 - l))}\n")
print(f"{len(routes)} prefixes, {n_ips} lookup addresses")
