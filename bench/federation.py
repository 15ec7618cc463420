#!/usr/bin/env python3
"""Federation benchmarks with real nodes on 127.0.0.1.

1. Propagation latency: five nodes; A has an agreement with each of B, C,
   D and E over its default collection. One GREEN indicator at a time is
   posted to A; the clock starts when A acknowledges the POST (202) and
   stops when the object can be read from each partner's TAXII API (each
   partner is polled every 2 ms). Reported per mode as p50, p99 and max
   over all (object, partner) pairs:
   - `live`: the partners follow A's live stream;
   - `pull`: the partners only pull, every `--pull-interval` seconds.
2. Backlog sync: B is stopped while A imports `--backlog` GREEN
   indicators (`anyam import`); B is started and the time until B holds
   them all is measured: objects per second received, each page's
   signature and every object's digest verified, stored durably.

Usage (after the test command made the virtual environment):

    cargo build --release -p anyam-cli
    .venv/bin/python bench/federation.py [--samples 200] [--backlog 100000]
        [--pull-interval 1] [--skip-latency] [--anyam target/release/anyam] [--out DIR] [--keep]

Prints a table and writes results.jsonl into `--out` (default
target/bench-federation). Every node it starts is stopped on exit and
their data directories are removed (kept with `--keep`).
"""

import argparse
import json
import os
import re
import statistics
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from support import TLP_GREEN, Node, indicator, post_envelope  # noqa: E402
from test_federation import agree, federating, introduce, sync_status  # noqa: E402


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def set_live(node, live: bool, interval: int):
    cfg = node.dir / "anyam.toml"
    text = cfg.read_text()
    text = re.sub(r"(?m)^live = \w+$", f"live = {'true' if live else 'false'}", text)
    text = re.sub(r"(?m)^interval_secs = \d+$", f"interval_secs = {interval}", text)
    cfg.write_text(text)


def present(session, node, cid, oid) -> bool:
    r = session.get(node.objects_url(cid), params={"match[id]": oid})
    return r.status_code == 200 and bool(r.json().get("objects"))


def latency_run(a, partners, cid, samples):
    sa = a.session()
    sessions = {p: p.session() for p in partners}
    lat = []
    for i in range(samples):
        o = indicator(i, object_marking_refs=[TLP_GREEN])
        post_envelope(sa, a.objects_url(cid), [o])
        t0 = time.monotonic()
        waiting = set(partners)
        deadline = t0 + 60
        while waiting and time.monotonic() < deadline:
            for p in list(waiting):
                if present(sessions[p], p, cid, o["id"]):
                    lat.append(time.monotonic() - t0)
                    waiting.discard(p)
            if waiting:
                time.sleep(0.002)
        if waiting:
            raise SystemExit(f"object {o['id']} did not reach {len(waiting)} partners in 60 s")
    for s in [sa, *sessions.values()]:
        s.close()
    return lat


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--pull-interval", type=int, default=1)
    ap.add_argument("--skip-latency", action="store_true", help="only the backlog benchmark")
    ap.add_argument("--anyam", default=str(ROOT / "target" / "release" / "anyam"))
    ap.add_argument("--out", default=str(ROOT / "target" / "bench-federation"))
    ap.add_argument("--keep", action="store_true", help="keep the nodes' data directories (removed by default)")
    args = ap.parse_args()
    os.environ["ANYAM_BIN"] = args.anyam
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="anyam-fed-bench-"))
    nodes: list[Node] = []

    def make(name):
        n = Node(tmp / name / "data")
        nodes.append(n)
        return n

    try:
        a, b, c, d, e = (federating(make, n) for n in ("a", "b", "c", "d", "e"))
        partners = [b, c, d, e]
        introduce([a, *partners], tmp)
        cid = a.default_collection
        for p in partners:
            agree(a, p, tmp, f"a-{p.dir.parent.name}", collections=[cid], max_tlp="amber")

        for mode in () if args.skip_latency else ("live", "pull"):
            for p in partners:
                set_live(p, mode == "live", args.pull_interval)
            for n in [a, *partners]:
                n.start()
            if mode == "live":
                deadline = time.monotonic() + 60
                while not all(any(s["stream_up"] for s in sync_status(p)) for p in partners):
                    if time.monotonic() > deadline:
                        raise SystemExit("live streams did not come up")
                    time.sleep(0.1)
            # Warm-up.
            latency_run(a, partners, cid, 5)
            lat = latency_run(a, partners, cid, args.samples)
            r = {"bench": "propagation", "mode": mode, "nodes": 5, "samples": len(lat),
                 "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
                 "max_ms": max(lat) * 1000, "mean_ms": statistics.mean(lat) * 1000}
            results.append(r)
            print(json.dumps(r), flush=True)
            for n in [a, *partners]:
                n.stop()

        # Backlog: B down while A takes in the backlog.
        for p in partners:
            set_live(p, True, args.pull_interval)
        src = tmp / "backlog.jsonl"
        with src.open("w") as f:
            for i in range(args.backlog):
                f.write(json.dumps(indicator(i, id=f"indicator--{uuid.uuid4()}",
                                             object_marking_refs=[TLP_GREEN])) + "\n")
        t = time.monotonic()
        a.cli("import", src, "--collection", cid)
        imported_s = time.monotonic() - t
        a.start()
        before = sum(s["received"] for s in sync_status(b) if s["partner"] == a.node_id)
        b.start()
        t0 = time.monotonic()
        target = before + args.backlog
        while True:
            got = sum(s["received"] for s in sync_status(b) if s["partner"] == a.node_id)
            if got >= target:
                break
            if time.monotonic() - t0 > 3600:
                raise SystemExit(f"backlog not synced within an hour: {got - before}/{args.backlog}")
            time.sleep(0.2)
        took = time.monotonic() - t0
        r = {"bench": "backlog", "objects": args.backlog, "seconds": took,
             "objects_per_s": args.backlog / took, "import_seconds_at_a": imported_s}
        results.append(r)
        print(json.dumps(r), flush=True)
    finally:
        for n in nodes:
            n.close()
        if args.keep:
            print(f"nodes' data kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        with (out / "results.jsonl").open("a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")

    print()
    print(f"{'benchmark':<24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'objects/s':>12}")
    for r in results:
        if r["bench"] == "propagation":
            print(f"{'propagation ' + r['mode']:<24}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['max_ms']:>10.1f}{'':>12}")
        else:
            print(f"{'backlog ' + str(r['objects']):<24}{'':>10}{'':>10}{'':>10}{r['objects_per_s']:>12.0f}")


if __name__ == "__main__":
    main()
