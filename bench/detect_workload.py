#!/usr/bin/env python3
"""Workloads for bench/detect.sh: generated indicators and sensor events, the
OASIS reference matcher's verdicts, and the comparison with `anyam detect`.

Everything is generated from a seed, so two runs with the same flags write
the same bytes.

Subcommands:

  gen-match DIR --patterns N --observations N --seed S
      N mixed STIX patterns (DIR/indicators.jsonl, one indicator a line, and
      DIR/patterns.json: id, pattern, kind, whether it spans observations)
      and N STIX 2.1 observed-data (DIR/observations.jsonl: one bundle a
      line, the observed-data and its SCOs, sorted by time, all within 50
      minutes).

  reference DIR
      Runs stix2matcher.matcher on DIR's workload: a pattern over one
      observation is matched against each observation alone, a pattern over
      several observations once against the whole list. Writes
      DIR/reference.json with the hits and the time spent compiling and
      matching (measured inside the process: Python start-up, imports and
      JSON parsing are not included).

  compare DIR ALERTS
      Compares the reference hits with the alerts of `anyam detect`: the set
      of (indicator, observation) pairs for single-observation patterns,
      "fired or not over the stream" for the others. Prints a JSON line;
      exits 1 on any difference, after listing every one of them.

  gen-indicators FILE --count N --seed S
      N indicators of the realistic mix (70% equality on IPv4/domain/URL/
      SHA-256, 10% IN, 10% CIDR ISSUBSET, 5% LIKE, 5% MATCHES).

  gen-events FORMAT FILE --events N --seed S
      N sensor records: zeek-tsv (conn.log, TSV), zeek-json (conn.log, JSON
      lines), eve (flow, dns and http), stix (observed-data bundles). About
      one record in a hundred carries a value of the indicator set.
"""

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=timezone.utc)
SPAN_SECS = 3000  # every observation starts within 50 minutes of T0
VALID_FROM = "2026-01-01T00:00:00Z"
CREATED = "2026-03-01T00:00:00.000Z"


def ts(t):
    """STIX timestamp with milliseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def uid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def q(s):
    """A STIX pattern string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def indicator(rng, pattern, name):
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--" + uid(rng),
        "created": CREATED,
        "modified": CREATED,
        "name": name,
        "indicator_types": ["malicious-activity"],
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": VALID_FROM,
    }


# ------------------------------------------------------------ value pools --

WORDS = ["update", "cdn", "login", "secure", "mail", "api", "static", "portal",
         "account", "verify", "cloud", "files", "sync", "auth", "online", "bank",
         "shop", "news", "media", "track", "edge", "service", "support", "docs"]
TLDS = ["com", "net", "org", "info", "io", "ru", "cn", "xyz", "top", "biz", "de", "fr"]
PATHS = ["/", "/index.html", "/login.php", "/wp-login.php", "/wp-admin/admin-ajax.php",
         "/admin/config.php", "/api/v1/status", "/api/v2/upload", "/download/setup.exe",
         "/gate.php", "/images/logo.png", "/static/app.js", "/invoice.pdf", "/c2/beacon",
         "/update/check", "/panel/index.php"]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "curl/8.5.0", "python-requests/2.31",
          "Microsoft-CryptoAPI/10.0", "Wget/1.21.4"]
MIMES = ["application/x-dosexec", "application/pdf", "application/zip", "text/html",
         "application/x-msdownload", "image/png"]
EXTERNAL_NETS = ["198.51.100", "203.0.113", "192.0.2", "45.33.12", "185.220.101",
                 "91.134.8", "104.21.44", "23.94.7"]


class Pools:
    """The values the match workload's observations and patterns draw from."""

    def __init__(self, rng):
        self.ext = sorted({f"{rng.choice(EXTERNAL_NETS)}.{rng.randrange(1, 255)}" for _ in range(500)})
        rng.shuffle(self.ext)
        self.ext = self.ext[:320]
        self.int = [f"10.{rng.randrange(0, 4)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}" for _ in range(60)]
        self.v6 = [f"2001:db8:{rng.choice(['a', 'b', 'c'])}::{rng.randrange(1, 0xffff):x}" for _ in range(40)]
        doms = set()
        while len(doms) < 200:
            w = rng.choice(WORDS)
            if rng.random() < 0.08:
                w = "xn--" + w + "-" + "".join(rng.choice("abcdefghij") for _ in range(4))
            sub = rng.choice(["", "", "www.", "cdn.", "mail.", rng.choice(WORDS) + "."])
            doms.add(f"{sub}{w}{rng.randrange(0, 100)}.{rng.choice(TLDS)}")
        self.dom = sorted(doms)
        rng.shuffle(self.dom)
        urls = set()
        while len(urls) < 200:
            urls.add(f"{rng.choice(['http', 'https'])}://{rng.choice(self.dom)}{rng.choice(PATHS)}")
        self.url = sorted(urls)
        rng.shuffle(self.url)
        self.sha = [f"{rng.getrandbits(256):064x}" for _ in range(150)]
        self.md5 = [f"{rng.getrandbits(128):032x}" for _ in range(150)]
        # Zipf-like weights: a few values are seen often, most rarely.
        self.w_ext = [1 / (k + 1) for k in range(len(self.ext))]
        self.w_dom = [1 / (k + 1) for k in range(len(self.dom))]
        self.w_url = [1 / (k + 1) for k in range(len(self.url))]
        self.w_sha = [1 / (k + 1) for k in range(len(self.sha))]

    def pick(self, rng, kind):
        vals, w = {"ext": (self.ext, self.w_ext), "dom": (self.dom, self.w_dom),
                   "url": (self.url, self.w_url), "sha": (self.sha, self.w_sha),
                   "md5": (self.md5, self.w_sha)}[kind]
        return rng.choices(vals, weights=w)[0]


# ----------------------------------------------------- match observations --

def observation(rng, pools, start):
    """One STIX 2.1 bundle: an observed-data and the SCOs it references."""
    objs = []

    def add(o):
        o["id"] = f"{o['type']}--{uid(rng)}"
        o["spec_version"] = "2.1"
        objs.append(o)
        return o["id"]

    kind = rng.choices(["conn", "dns", "http", "file"], weights=[40, 25, 20, 15])[0]
    v6 = kind == "conn" and rng.random() < 0.1
    if v6:
        src = add({"type": "ipv6-addr", "value": rng.choice(pools.v6)})
        dst = add({"type": "ipv6-addr", "value": rng.choice(pools.v6)})
    else:
        src = add({"type": "ipv4-addr", "value": rng.choice(pools.int)})
        dst_ip = pools.pick(rng, "ext")
        dst = add({"type": "ipv4-addr", "value": dst_ip})
    dur = rng.choice([0.01, 0.2, 1.5, 4.0, 30.0, 58.0])
    end = start + timedelta(seconds=dur)
    nt = {"type": "network-traffic", "src_ref": src, "dst_ref": dst,
          "src_port": rng.randrange(1024, 65536), "start": ts(start), "end": ts(end),
          "src_byte_count": rng.choice([60, 517, 1400, 20000, 250000, 2000000]),
          "dst_byte_count": rng.choice([0, 120, 4096, 65000, 1500000])}
    if kind == "conn":
        nt["dst_port"] = rng.choice([443, 443, 80, 22, 3389, 445, 8443, 4444, 1337, 1080, 53, 123])
        nt["protocols"] = ["ipv6" if v6 else "ipv4", "udp" if nt["dst_port"] in (53, 123) else "tcp"]
    elif kind == "dns":
        nt["dst_port"] = 53
        nt["protocols"] = ["ipv4", "udp", "dns"]
        ans = add({"type": "ipv4-addr", "value": pools.pick(rng, "ext")})
        add({"type": "domain-name", "value": pools.pick(rng, "dom"), "resolves_to_refs": [ans]})
    elif kind == "http":
        url = pools.pick(rng, "url")
        host = url.split("/")[2]
        nt["dst_port"] = 443 if url.startswith("https") else 80
        nt["protocols"] = ["ipv4", "tcp", "http"]
        nt["extensions"] = {"http-request-ext": {
            "request_method": rng.choice(["GET", "GET", "GET", "POST", "HEAD"]),
            "request_value": "/" + url.split("/", 3)[3],
            "request_version": "http/1.1",
            "request_header": {"Host": host, "User-Agent": rng.choice(AGENTS)}}}
        add({"type": "url", "value": url})
        add({"type": "domain-name", "value": host})
    else:
        nt["dst_port"] = rng.choice([80, 443, 445])
        nt["protocols"] = ["ipv4", "tcp"]
        add({"type": "file", "name": rng.choice(["setup.exe", "invoice.pdf", "a.zip", "payload.bin", "logo.png"]),
             "size": rng.choice([1024, 48213, 1048576, 7340032]),
             "mime_type": rng.choice(MIMES),
             "hashes": {"MD5": pools.pick(rng, "md5"), "SHA-256": pools.pick(rng, "sha")}})
    add(nt)
    od = {"type": "observed-data", "spec_version": "2.1", "id": "observed-data--" + uid(rng),
          "created": ts(end), "modified": ts(end), "first_observed": ts(start), "last_observed": ts(end),
          "number_observed": 1, "object_refs": [o["id"] for o in objs]}
    return {"type": "bundle", "id": "bundle--" + uid(rng), "objects": [od] + objs}


# --------------------------------------------------------- match patterns --

def fresh_ip(rng):
    return f"{rng.choice(EXTERNAL_NETS)}.{rng.randrange(1, 255)}"


def maybe(rng, pools, kind, fresh, p=0.6):
    """A pool value (so the pattern can hit) or, with 1-p, a fresh one."""
    return pools.pick(rng, kind) if rng.random() < p else fresh(rng)


def single_pattern(rng, pools):
    """(kind, pattern) over one observation."""
    ip = lambda p=0.6: maybe(rng, pools, "ext", fresh_ip, p)
    dom = lambda p=0.6: maybe(rng, pools, "dom", lambda r: f"{r.choice(WORDS)}{r.randrange(100, 999)}.{r.choice(TLDS)}", p)
    url = lambda p=0.6: maybe(rng, pools, "url", lambda r: f"http://{r.choice(WORDS)}{r.randrange(100, 999)}.com{r.choice(PATHS)}", p)
    sha = lambda p=0.6: maybe(rng, pools, "sha", lambda r: f"{r.getrandbits(256):064x}", p)
    md5 = lambda p=0.6: maybe(rng, pools, "md5", lambda r: f"{r.getrandbits(128):032x}", p)
    kinds = {
        "eq-ip": 12, "eq-dst-ref": 8, "eq-domain": 10, "eq-url": 8, "eq-sha256": 6, "eq-md5": 3,
        "in-ip": 4, "in-domain": 4, "in-port": 2, "cidr": 7, "cidr-v6": 2, "like": 6, "matches": 6,
        "ordering": 8, "not-equal": 3, "or-in-bracket": 4, "deref-list": 2, "cross-type-and": 2, "exists": 2,
        "timestamp": 2, "not-in": 2,
    }
    k = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    if k == "eq-ip":
        return k, f"[ipv4-addr:value = {q(ip())}]"
    if k == "eq-dst-ref":
        return k, f"[network-traffic:dst_ref.value = {q(ip())}]"
    if k == "eq-domain":
        return k, f"[domain-name:value = {q(dom())}]"
    if k == "eq-url":
        return k, f"[url:value = {q(url())}]"
    if k == "eq-sha256":
        return k, f"[file:hashes.'SHA-256' = {q(sha())}]"
    if k == "eq-md5":
        return k, f"[file:hashes.MD5 = {q(md5())}]"
    if k == "in-ip":
        vals = sorted({ip(0.3) for _ in range(rng.randrange(2, 8))})
        return k, f"[ipv4-addr:value IN ({', '.join(map(q, vals))})]"
    if k == "in-domain":
        vals = sorted({dom(0.3) for _ in range(rng.randrange(2, 8))})
        return k, f"[domain-name:value IN ({', '.join(map(q, vals))})]"
    if k == "in-port":
        ports = sorted(rng.sample([22, 445, 1080, 1337, 3389, 4444, 5555, 6667, 8443, 9001], 3))
        return k, f"[network-traffic:dst_port IN ({', '.join(map(str, ports))}) AND network-traffic:dst_ref.value = {q(ip(0.9))}]"
    if k == "cidr":
        net = rng.choice(EXTERNAL_NETS)
        plen = rng.choice([24, 26, 27, 28, 29, 30])
        base = rng.randrange(0, 256) & (0xff << (32 - plen)) & 0xff
        prop = rng.choice(["ipv4-addr:value", "network-traffic:dst_ref.value"])
        return k, f"[{prop} ISSUBSET '{net}.{base}/{plen}']"
    if k == "cidr-v6":
        return k, f"[ipv6-addr:value ISSUBSET '2001:db8:{rng.choice('abcd')}::/{rng.choice([48, 64, 112])}']"
    if k == "like":
        return k, rng.choice([
            f"[domain-name:value LIKE '%{rng.choice(WORDS)}%.{rng.choice(TLDS)}']",
            f"[domain-name:value LIKE '{rng.choice(['www', 'cdn', 'mail'])}.%']",
            f"[url:value LIKE '%{rng.choice(PATHS[1:])}']",
            f"[url:value LIKE 'http://{rng.choice(WORDS)}__.%']",
            f"[file:name LIKE '%.{rng.choice(['exe', 'bin', 'zip'])}']",
        ])
    if k == "matches":
        return k, rng.choice([
            f"[url:value MATCHES '^https?://[^/]*{rng.choice(WORDS)}[0-9]+\\\\.{rng.choice(TLDS)}/']",
            f"[url:value MATCHES '/(wp-admin|admin|panel)/[a-z-]+\\\\.php$']",
            "[domain-name:value MATCHES '^xn--']",
            f"[domain-name:value MATCHES '^({rng.choice(WORDS)}|{rng.choice(WORDS)})[0-9]{{1,2}}\\\\.(ru|cn|xyz|top)$']",
            f"[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' MATCHES '^(curl|Wget|python-requests)/']",
            f"[file:hashes.'SHA-256' MATCHES '^{rng.choice('0123456789abcdef')}{rng.choice('0123456789abcdef')}']",
        ])
    if k == "ordering":
        return k, rng.choice([
            f"[network-traffic:dst_port = {rng.choice([4444, 1337, 3389, 22])} AND network-traffic:src_byte_count > {rng.choice([1000, 100000, 1000000])}]",
            f"[network-traffic:dst_byte_count >= {rng.choice([1000000, 1500000])} AND network-traffic:dst_ref.value = {q(ip(0.9))}]",
            f"[file:size > {rng.choice([1000000, 5000000])} AND file:mime_type = {q(rng.choice(MIMES))}]",
            f"[network-traffic:dst_port > {rng.choice([1000, 4000])} AND network-traffic:dst_port < {rng.choice([1100, 5000])}]",
            f"[domain-name:value > {q(dom(1))} AND domain-name:value < {q(dom(1))}]",
            f"[network-traffic:src_port <= 1100]",
        ])
    if k == "not-equal":
        return k, rng.choice([
            f"[network-traffic:dst_port != 443 AND network-traffic:dst_ref.value = {q(ip(0.9))}]",
            f"[network-traffic:extensions.'http-request-ext'.request_method != 'GET' AND url:value = {q(url(0.9))}]",
        ])
    if k == "or-in-bracket":
        return k, rng.choice([
            f"[ipv4-addr:value = {q(ip())} OR domain-name:value = {q(dom())}]",
            f"[url:value = {q(url())} OR file:hashes.'SHA-256' = {q(sha())}]",
        ])
    if k == "deref-list":
        return k, f"[domain-name:resolves_to_refs[*].value = {q(ip(0.9))}]"
    if k == "exists":
        return k, (f"[network-traffic:dst_ref.value = {q(ip(0.9))} AND "
                   f"EXISTS network-traffic:extensions.'http-request-ext'.request_header.'User-Agent']")
    if k == "cross-type-and":
        return k, f"[network-traffic:extensions.'http-request-ext'.request_method = 'POST' AND url:value LIKE '%{rng.choice(PATHS[1:])}']"
    if k == "timestamp":
        at = T0 + timedelta(seconds=rng.randrange(0, SPAN_SECS))
        return k, f"[network-traffic:start >= t'{at.strftime('%Y-%m-%dT%H:%M:%SZ')}' AND network-traffic:dst_ref.value = {q(ip(0.9))}]"
    if k == "not-in":
        return k, f"[network-traffic:dst_ref.value = {q(ip(0.9))} AND network-traffic:dst_port NOT IN (80, 443)]"
    raise AssertionError(k)


def multi_pattern(rng, pools):
    """(kind, pattern) over several observations. The brackets are fairly
    selective values (the head of the pools), so bindings exist often but
    the reference matcher's search stays small."""
    def bracket():
        c = rng.choices(["ip", "dom", "url", "port", "cidr", "sha"], weights=[35, 20, 15, 10, 10, 10])[0]
        if c == "ip":
            return f"[network-traffic:dst_ref.value = {q(rng.choice(pools.ext[:40]))}]"
        if c == "dom":
            return f"[domain-name:value = {q(rng.choice(pools.dom[:30]))}]"
        if c == "url":
            return f"[url:value = {q(rng.choice(pools.url[:30]))}]"
        if c == "port":
            return f"[network-traffic:dst_port = {rng.choice([3389, 4444, 1337, 1080])} AND network-traffic:src_byte_count >= {rng.choice([20000, 250000])}]"
        if c == "cidr":
            return f"[ipv4-addr:value ISSUBSET '{rng.choice(EXTERNAL_NETS)}.{rng.choice([0, 64, 128, 192])}/27']"
        return f"[file:hashes.'SHA-256' = {q(rng.choice(pools.sha[:20]))}]"

    def stamp(secs):
        return (T0 + timedelta(seconds=secs)).strftime("t'%Y-%m-%dT%H:%M:%SZ'")

    kinds = {"and": 3, "or": 2, "followedby": 3, "followedby-within": 3, "and-within": 2,
             "repeats": 2, "repeats-within": 2, "start-stop": 2, "nested": 2}
    k = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    a, b, c = bracket(), bracket(), bracket()
    if k == "and":
        return k, f"{a} AND {b}"
    if k == "or":
        return k, f"{a} OR {b}"
    if k == "followedby":
        return k, f"{a} FOLLOWEDBY {b}"
    if k == "followedby-within":
        return k, f"({a} FOLLOWEDBY {b}) WITHIN {rng.choice([60, 300, 900])} SECONDS"
    if k == "and-within":
        return k, f"({a} AND {b}) WITHIN {rng.choice([30, 120, 600])} SECONDS"
    if k == "repeats":
        return k, f"{a} REPEATS {rng.choice([2, 3, 5])} TIMES"
    if k == "repeats-within":
        return k, f"({a} REPEATS {rng.choice([2, 3])} TIMES) WITHIN {rng.choice([60, 300])} SECONDS"
    if k == "start-stop":
        s = rng.randrange(0, SPAN_SECS - 600)
        return k, f"{a} START {stamp(s)} STOP {stamp(s + rng.choice([300, 600, 1200]))}"
    return k, rng.choice([
        f"({a} OR {b}) FOLLOWEDBY {c}",
        f"(({a} AND {b}) WITHIN 900 SECONDS) OR ({c} REPEATS 2 TIMES)",
        f"({a} FOLLOWEDBY {b}) AND {c}",
    ])


def gen_match(args):
    rng = random.Random(args.seed)
    pools = Pools(rng)
    starts = sorted(rng.uniform(0, SPAN_SECS) for _ in range(args.observations))
    with open(f"{args.dir}/observations.jsonl", "w") as f:
        for s in starts:
            start = T0 + timedelta(milliseconds=round(s * 1000))
            f.write(json.dumps(observation(rng, pools, start), separators=(",", ":")) + "\n")
    meta = []
    multis = set(rng.sample(range(args.patterns), round(args.patterns * args.multi_share)))
    with open(f"{args.dir}/indicators.jsonl", "w") as f:
        for i in range(args.patterns):
            multi = i in multis
            kind, pattern = (multi_pattern if multi else single_pattern)(rng, pools)
            ind = indicator(rng, pattern, f"bench {kind} {i}")
            f.write(json.dumps(ind, separators=(",", ":")) + "\n")
            meta.append({"id": ind["id"], "pattern": pattern, "kind": kind, "multi": multi})
    with open(f"{args.dir}/patterns.json", "w") as f:
        json.dump(meta, f)
    print(json.dumps({"patterns": len(meta), "multi_observation": sum(m["multi"] for m in meta),
                      "observations": len(starts)}))


# -------------------------------------------------------------- reference --

def reference(args):
    from stix2matcher.matcher import Pattern  # imported before timing starts

    meta = json.load(open(f"{args.dir}/patterns.json"))
    obs = [json.loads(line) for line in open(f"{args.dir}/observations.jsonl")]
    singles, fired, errors = [], {}, []
    compile_s = match_s = 0.0
    n_calls = 0
    progress = time.monotonic()
    for i, m in enumerate(meta):
        t = time.perf_counter()
        try:
            p = Pattern(m["pattern"], "2.1")
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            errors.append({"id": m["id"], "pattern": m["pattern"], "error": f"compile: {e}"})
            compile_s += time.perf_counter() - t
            continue
        t1 = time.perf_counter()
        compile_s += t1 - t
        if m["multi"]:
            n_calls += 1
            try:
                fired[m["id"]] = bool(p.match(obs))
            except Exception as e:  # noqa: BLE001
                errors.append({"id": m["id"], "pattern": m["pattern"], "error": str(e)})
        else:
            for j, o in enumerate(obs):
                n_calls += 1
                try:
                    if p.match([o]):
                        singles.append([m["id"], j])
                except Exception as e:  # noqa: BLE001
                    errors.append({"id": m["id"], "pattern": m["pattern"], "observation": j, "error": str(e)})
        match_s += time.perf_counter() - t1
        if time.monotonic() - progress > 30:
            progress = time.monotonic()
            print(f"  reference matcher: {i + 1}/{len(meta)} patterns, {compile_s + match_s:.0f}s",
                  file=sys.stderr)
    out = {"single_hits": singles, "multi_fired": fired, "errors": errors,
           "compile_seconds": compile_s, "match_seconds": match_s,
           "seconds": compile_s + match_s, "match_calls": n_calls}
    json.dump(out, open(f"{args.dir}/reference.json", "w"))
    print(json.dumps({k: v for k, v in out.items() if k not in ("single_hits", "multi_fired", "errors")}
                     | {"single_hits": len(singles), "multi_fired": sum(fired.values()),
                        "errors": len(errors)}))


# ---------------------------------------------------------------- compare --

def compare(args):
    meta = json.load(open(f"{args.dir}/patterns.json"))
    ref = json.load(open(f"{args.dir}/reference.json"))
    by_id = {m["id"]: m for m in meta}
    obs_lines = open(f"{args.dir}/observations.jsonl").read().splitlines()
    want_single = {(i, j) for i, j in ref["single_hits"]}
    want_multi = {i for i, f in ref["multi_fired"].items() if f}
    # What the reference could not decide (it raised) is left out of the
    # comparison and counted: a pair for a single-observation pattern, the
    # pattern for the others (or every pair when the pattern did not compile).
    err_pairs = {(e["id"], e["observation"]) for e in ref["errors"] if "observation" in e}
    err_ids = {e["id"] for e in ref["errors"] if "observation" not in e}
    got_single, got_multi, multi_hits = set(), set(), 0
    for line in open(args.alerts):
        a = json.loads(line)
        iid = a["indicator"]["id"]
        m = by_id.get(iid)
        if m is None:
            print(f"compare: alert for an unknown indicator {iid}", file=sys.stderr)
            continue
        if m["multi"]:
            got_multi.add(iid)
            multi_hits += 1
        else:
            for o in a["observations"]:
                got_single.add((iid, o["line"] - 1))
    missing = sorted(want_single - got_single)
    extra = sorted(got_single - want_single)
    multi_missing = sorted(want_multi - got_multi)
    multi_extra = sorted(got_multi - want_multi)
    undecided = lambda x: x in err_pairs or x[0] in err_ids
    anyam_on_errors = sum(1 for x in got_single if undecided(x)) + len(got_multi & err_ids)
    missing = [x for x in missing if not undecided(x)]
    extra = [x for x in extra if not undecided(x)]
    multi_missing = [x for x in multi_missing if x not in err_ids]
    multi_extra = [x for x in multi_extra if x not in err_ids]

    def show(tag, iid, j=None):
        m = by_id[iid]
        print(f"MISMATCH {tag}: {iid} ({m['kind']}): {m['pattern']}", file=sys.stderr)
        if j is not None:
            print(f"  observation line {j + 1}: {obs_lines[j]}", file=sys.stderr)

    limit = args.show
    for iid, j in missing[:limit]:
        show("reference hit, anyam did not", iid, j)
    for iid, j in extra[:limit]:
        show("anyam hit, reference did not", iid, j)
    for iid in multi_missing[:limit]:
        show("reference fired over the stream, anyam did not", iid)
    for iid in multi_extra[:limit]:
        show("anyam fired over the stream, reference did not", iid)
    seen = set()
    for e in ref["errors"]:
        key = (e["pattern"], e["error"].split(":")[0])
        if key not in seen and len(seen) < limit:
            seen.add(key)
            print(f"reference error (left out of the comparison): {e}", file=sys.stderr)
    n_bad = len(missing) + len(extra) + len(multi_missing) + len(multi_extra)
    n_multi = sum(m["multi"] for m in meta)
    print(json.dumps({
        "single_observation_patterns": len(meta) - n_multi,
        "multi_observation_patterns": n_multi,
        "single_pairs_reference": len(want_single), "single_pairs_anyam": len(got_single),
        "single_patterns_with_hits": len({i for i, _ in want_single}),
        "multi_fired_reference": len(want_multi), "multi_fired_anyam": len(got_multi),
        "multi_alerts_anyam": multi_hits,
        "missing": len(missing), "extra": len(extra),
        "multi_missing": len(multi_missing), "multi_extra": len(multi_extra),
        "reference_errors": len(ref["errors"]), "anyam_hits_where_reference_raised": anyam_on_errors,
        "mismatches": n_bad}))
    sys.exit(1 if n_bad else 0)


# ------------------------------------------------- large realistic inputs --

class LargePools:
    """Indicator values and the share of them that sensors will see."""

    def __init__(self, seed, n):
        rng = random.Random(seed)
        self.rng = rng
        self.n = n
        # Indicator values; events draw from the first halves, so half of
        # the equality indicators can hit.
        self.ips = [self.public_ip(rng) for _ in range(max(n // 4, 10))]
        self.doms = [self.domain(rng) for _ in range(max(n // 5, 10))]
        self.urls = [f"http://{self.domain(rng)}{rng.choice(PATHS)}?id={rng.randrange(10**6)}" for _ in range(max(n // 8, 10))]
        self.shas = [f"{rng.getrandbits(256):064x}" for _ in range(max(n // 8, 10))]

    @staticmethod
    def public_ip(rng):
        while True:
            a = rng.randrange(1, 224)
            if a not in (10, 127, 172, 192):
                return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    @staticmethod
    def domain(rng):
        return (f"{rng.choice(['', 'www.', 'cdn.', 'api.', 'mail.'])}{rng.choice(WORDS)}-"
                f"{rng.getrandbits(24):06x}.{rng.choice(TLDS)}")


def gen_indicators(args):
    lp = LargePools(args.seed, args.count)
    rng = random.Random(args.seed + 1)
    counters = {}
    with open(args.file, "w") as f:
        for i in range(args.count):
            r = rng.random()
            if r < 0.70:
                c = rng.choices(["ip", "dom", "url", "sha"], weights=[40, 30, 20, 10])[0]
                k = "eq-" + c
                if c == "ip":
                    p = f"[ipv4-addr:value = {q(lp.ips[i % len(lp.ips)])}]" if rng.random() < 0.5 else \
                        f"[network-traffic:dst_ref.value = {q(lp.ips[i % len(lp.ips)])}]"
                elif c == "dom":
                    p = f"[domain-name:value = {q(lp.doms[i % len(lp.doms)])}]"
                elif c == "url":
                    p = f"[url:value = {q(lp.urls[i % len(lp.urls)])}]"
                else:
                    p = f"[file:hashes.'SHA-256' = {q(lp.shas[i % len(lp.shas)])}]"
            elif r < 0.80:
                k = "in"
                if rng.random() < 0.5:
                    vals = [rng.choice(lp.ips) for _ in range(rng.randrange(2, 6))]
                    p = f"[ipv4-addr:value IN ({', '.join(map(q, sorted(set(vals))))})]"
                else:
                    vals = [rng.choice(lp.doms) for _ in range(rng.randrange(2, 6))]
                    p = f"[domain-name:value IN ({', '.join(map(q, sorted(set(vals))))})]"
            elif r < 0.90:
                k = "cidr"
                plen = rng.choice([24, 24, 26, 28, 30])
                ip = [int(x) for x in rng.choice(lp.ips).split(".")]
                n = ((ip[0] << 24) | (ip[1] << 16) | (ip[2] << 8) | ip[3]) & ~((1 << (32 - plen)) - 1) & 0xffffffff
                net = ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))
                p = f"[ipv4-addr:value ISSUBSET '{net}/{plen}']"
            elif r < 0.95:
                k = "like"
                d = rng.choice(lp.doms).split(".")
                label = d[-2]
                p = rng.choice([f"[domain-name:value LIKE '%{label}.{d[-1]}']",
                                f"[url:value LIKE 'http://%{label}%']"])
            else:
                k = "matches"
                label = rng.choice(lp.doms).split(".")[-2]
                word, suffix = label.split("-")
                tld = rng.choice(lp.doms).split(".")[-1]
                # Both shapes start with a few literal alternatives, which
                # the engine indexes. (Followed by a class repeat, as in
                # `^https?://(www\\.)?x\\.[a-z]+/`, the optional group
                # leaves the engine only the suffix "/": every URL is then a
                # candidate and the expression is evaluated on each.)
                p = rng.choice([f"[domain-name:value MATCHES '^(www\\\\.|cdn\\\\.|api\\\\.|mail\\\\.)?{word}-{suffix[:4]}[0-9a-f]{{2}}\\\\.{tld}$']",
                                f"[url:value MATCHES '^https?://(www\\\\.)?{word}-{suffix}\\\\.']"])
            counters[k] = counters.get(k, 0) + 1
            f.write(json.dumps(indicator(rng, p, f"bench {k} {i}"), separators=(",", ":")) + "\n")
    print(json.dumps({"indicators": args.count, "mix": counters}))


def gen_events(args):
    lp = LargePools(args.seed, args.indicators)
    rng = random.Random(args.seed + 2)
    half_ips, half_doms, half_urls = lp.ips[: len(lp.ips) // 2], lp.doms[: len(lp.doms) // 2], lp.urls[: len(lp.urls) // 2]
    internal = [f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(2000)]
    public = [lp.public_ip(rng) for _ in range(50000)]
    doms = [lp.domain(rng) for _ in range(20000)]
    t0 = T0.timestamp()
    step = 3600.0 * 24 / max(args.events, 1)  # a day of traffic
    rate = args.hit_rate
    rnd = rng.random
    choice = rng.choice
    randrange = rng.randrange
    out = open(args.file, "w", buffering=1 << 20)
    fmt = args.format
    services = [("tcp", 443, "ssl"), ("tcp", 80, "http"), ("udp", 53, "dns"), ("tcp", 22, "ssh"),
                ("tcp", 445, "-"), ("udp", 123, "-"), ("tcp", 8443, "ssl"), ("tcp", 3389, "-")]

    def dst():
        return choice(half_ips) if rnd() < rate else choice(public)

    def dom():
        return choice(half_doms) if rnd() < rate else choice(doms)

    def url():
        if rnd() < rate:
            return choice(half_urls)
        return f"http://{choice(doms)}{choice(PATHS)}?id={randrange(10**6)}"

    if fmt == "zeek-tsv":
        out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
                  "#open\t2026-03-02-10-00-00\n"
                  "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
                  "orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t"
                  "orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n"
                  "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\t"
                  "string\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n")
    for i in range(args.events):
        t = t0 + i * step
        src = choice(internal)
        sport = randrange(1024, 65536)
        proto, port, svc = choice(services)
        ob, rb, op, rp = randrange(40, 5000), randrange(0, 200000), randrange(1, 50), randrange(0, 200)
        duration = randrange(1, 60000) / 1000
        if fmt == "zeek-tsv":
            out.write(f"{t:.6f}\tC{i:017x}\t{src}\t{sport}\t{dst()}\t{port}\t{proto}\t{svc}\t{duration:.6f}\t"
                      f"{ob}\t{rb}\tSF\tT\tF\t0\tShADadFf\t{op}\t{ob + 40 * op}\t{rp}\t{rb + 40 * rp}\t(empty)\n")
        elif fmt == "zeek-json":
            out.write(f'{{"ts":{t:.6f},"uid":"C{i:017x}","id.orig_h":"{src}","id.orig_p":{sport},'
                      f'"id.resp_h":"{dst()}","id.resp_p":{port},"proto":"{proto}",'
                      + (f'"service":"{svc}",' if svc != "-" else "")
                      + f'"duration":{duration},"orig_bytes":{ob},"resp_bytes":{rb},"conn_state":"SF",'
                      f'"local_orig":true,"local_resp":false,"missed_bytes":0,"history":"ShADadFf",'
                      f'"orig_pkts":{op},"orig_ip_bytes":{ob + 40 * op},"resp_pkts":{rp},"resp_ip_bytes":{rb + 40 * rp}}}\n')
        elif fmt == "eve":
            stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
            kind = rnd()
            if kind < 0.5:
                end = datetime.fromtimestamp(t + duration, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
                out.write(f'{{"timestamp":"{stamp}","flow_id":{i},"in_iface":"eth0","event_type":"flow",'
                          f'"src_ip":"{src}","src_port":{sport},"dest_ip":"{dst()}","dest_port":{port},'
                          f'"proto":"{proto.upper()}","flow":{{"pkts_toserver":{op},"pkts_toclient":{rp},'
                          f'"bytes_toserver":{ob},"bytes_toclient":{rb},"start":"{stamp}","end":"{end}",'
                          f'"age":{int(duration)},"state":"closed","reason":"timeout","alerted":false}}}}\n')
            elif kind < 0.8:
                name = dom()
                out.write(f'{{"timestamp":"{stamp}","flow_id":{i},"in_iface":"eth0","event_type":"dns",'
                          f'"src_ip":"{src}","src_port":{sport},"dest_ip":"10.0.0.53","dest_port":53,"proto":"UDP",'
                          f'"dns":{{"version":2,"type":"answer","id":{i & 0xffff},"flags":"8180","qr":true,'
                          f'"rd":true,"ra":true,"rrname":"{name}","rrtype":"A","rcode":"NOERROR",'
                          f'"answers":[{{"rrname":"{name}","rrtype":"A","ttl":300,"rdata":"{dst()}"}}]}}}}\n')
            else:
                u = url()
                host = u.split("/")[2]
                path = "/" + u.split("/", 3)[3]
                out.write(f'{{"timestamp":"{stamp}","flow_id":{i},"in_iface":"eth0","event_type":"http",'
                          f'"src_ip":"{src}","src_port":{sport},"dest_ip":"{dst()}","dest_port":80,"proto":"TCP",'
                          f'"tx_id":0,"http":{{"hostname":"{host}","url":"{path}","http_user_agent":"{choice(AGENTS)}",'
                          f'"http_content_type":"text/html","http_method":"GET","protocol":"HTTP/1.1",'
                          f'"status":200,"length":{rb}}}}}\n')
        else:  # stix
            start = datetime.fromtimestamp(t, timezone.utc)
            s, e = ts(start), ts(start + timedelta(seconds=duration))
            ids = [f"{randrange(1 << 32):08x}-{randrange(1 << 16):04x}-4{randrange(1 << 12):03x}-"
                   f"{8 + randrange(4):x}{randrange(1 << 12):03x}-{randrange(1 << 48):012x}" for _ in range(5)]
            extra, refs = "", [f"ipv4-addr--{ids[0]}", f"ipv4-addr--{ids[1]}", f"network-traffic--{ids[2]}"]
            kind = rnd()
            if kind < 0.25:
                refs.append(f"domain-name--{ids[3]}")
                extra = f',{{"type":"domain-name","spec_version":"2.1","id":"domain-name--{ids[3]}","value":"{dom()}"}}'
            elif kind < 0.4:
                refs.append(f"url--{ids[3]}")
                extra = f',{{"type":"url","spec_version":"2.1","id":"url--{ids[3]}","value":"{url()}"}}'
            elif kind < 0.45:
                sha = choice(lp.shas[: len(lp.shas) // 2]) if rnd() < rate else f"{rng.getrandbits(256):064x}"
                refs.append(f"file--{ids[3]}")
                extra = (f',{{"type":"file","spec_version":"2.1","id":"file--{ids[3]}","name":"payload.bin",'
                         f'"size":{rb},"hashes":{{"SHA-256":"{sha}"}}}}')
            refs_s = ",".join(f'"{r}"' for r in refs)
            out.write(f'{{"type":"bundle","id":"bundle--{ids[4]}","objects":[{{"type":"observed-data",'
                      f'"spec_version":"2.1","id":"observed-data--{ids[4]}","created":"{e}","modified":"{e}",'
                      f'"first_observed":"{s}","last_observed":"{e}","number_observed":1,"object_refs":[{refs_s}]}},'
                      f'{{"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--{ids[0]}","value":"{src}"}},'
                      f'{{"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--{ids[1]}","value":"{dst()}"}},'
                      f'{{"type":"network-traffic","spec_version":"2.1","id":"network-traffic--{ids[2]}",'
                      f'"src_ref":"ipv4-addr--{ids[0]}","dst_ref":"ipv4-addr--{ids[1]}","src_port":{sport},'
                      f'"dst_port":{port},"protocols":["ipv4","{proto}"],"start":"{s}","end":"{e}",'
                      f'"src_byte_count":{ob},"dst_byte_count":{rb}}}{extra}]}}\n')
    out.close()
    print(json.dumps({"format": fmt, "events": args.events, "file": args.file}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-match")
    g.add_argument("dir")
    g.add_argument("--patterns", type=int, default=1000)
    g.add_argument("--observations", type=int, default=1000)
    g.add_argument("--multi-share", type=float, default=0.15)
    g.add_argument("--seed", type=int, default=1)
    g.set_defaults(fn=gen_match)
    r = sub.add_parser("reference")
    r.add_argument("dir")
    r.set_defaults(fn=reference)
    c = sub.add_parser("compare")
    c.add_argument("dir")
    c.add_argument("alerts")
    c.add_argument("--show", type=int, default=20, help="mismatches listed per category")
    c.set_defaults(fn=compare)
    i = sub.add_parser("gen-indicators")
    i.add_argument("file")
    i.add_argument("--count", type=int, default=100000)
    i.add_argument("--seed", type=int, default=1)
    i.set_defaults(fn=gen_indicators)
    e = sub.add_parser("gen-events")
    e.add_argument("format", choices=["zeek-tsv", "zeek-json", "eve", "stix"])
    e.add_argument("file")
    e.add_argument("--events", type=int, default=1000000)
    e.add_argument("--indicators", type=int, default=100000, help="the --count given to gen-indicators")
    e.add_argument("--hit-rate", type=float, default=0.01, help="share of values drawn from the indicators")
    e.add_argument("--seed", type=int, default=1)
    e.set_defaults(fn=gen_events)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
