#!/usr/bin/env python3
"""heap_sites.py STACKS N ROOT: heaptrack's folded stacks (heaptrack_print -F ...
--flamegraph-cost-type leaked) summed by allocation site and divided by N (the idle
connections open when the process was killed), for tests/bench/bench_idle.sh.

A site is the innermost xmppfront function on the stack (a frame whose source file is
one of ROOT/{proxy,tenants,certs}/*.c) and the library function it called (malloc,
mbedtls_ssl_setup, XML_ParserCreateNS, ...). Stacks without an xmppfront frame are the
libraries' own start-up state and are left out.
"""
import collections
import os
import sys


def main():
    stacks, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ours = set()
    for d in ("proxy", "tenants", "certs"):
        for f in os.listdir(os.path.join(root, d)):
            if f.endswith(".c"):
                ours.add(f)
    sites = collections.Counter()
    total = 0
    for line in open(stacks, errors="replace"):
        frames, _, cost = line.rstrip("\n").rpartition(" ")
        try:
            cost = int(cost)
        except ValueError:
            continue
        fr = [f for f in frames.split(";") if f]
        idx = None
        for i, f in enumerate(fr):
            if f.endswith(")") and f[f.rfind("(") + 1:-1] in ours:
                idx = i
        if idx is None or cost == 0:
            continue
        name = lambda f: f.split(" (")[0]
        callee = name(fr[idx + 1]) if idx + 1 < len(fr) else "malloc"
        # Connection-independent state reached from xmppfront code (configuration,
        # registry, TLS configuration) is large and not per connection: dropped below
        # by the per-connection threshold only if small; label it anyway.
        sites[name(fr[idx]) + " -> " + callee] += cost
        total += cost
    for site, cost in sites.most_common():
        if cost / n >= 8:
            print("  %8.0f  %s" % (cost / n, site))
    print("  %8.0f  total from xmppfront call paths (bytes per connection, incl. the"
          " configuration's share / N)" % (total / n))


if __name__ == "__main__":
    main()
