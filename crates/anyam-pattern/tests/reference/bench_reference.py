"""Time the OASIS reference matcher on a workload file, for the ratio benchmark.

Usage: python bench_reference.py WORKLOAD.json SECONDS
The workload is {"patterns": [...], "observations": [...], "stix_version": ...}.
Prints JSON: {"parses_per_sec": ..., "evals_per_sec": ...} where an eval is one
pattern (pre-compiled) matched against one observation set, and a parse is one
pattern compiled.
"""

import json
import sys
import time

from stix2matcher.matcher import Pattern


def main():
    work = json.load(open(sys.argv[1]))
    budget = float(sys.argv[2])
    patterns, obs, sv = work["patterns"], work["observations"], work["stix_version"]

    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        for p in patterns:
            Pattern(p, sv)
        n += len(patterns)
    parses = n / (time.perf_counter() - start)

    compiled = [Pattern(p, sv) for p in patterns]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        for c in compiled:
            for o in obs:
                c.match([o])
                n += 1
    evals = n / (time.perf_counter() - start)
    print(json.dumps({"parses_per_sec": parses, "evals_per_sec": evals}))


if __name__ == "__main__":
    main()
