#!/usr/bin/env bash
# TAXII 2.1 benchmarks of an Anyam node, side by side with the OASIS
# reference server (medallion, memory backend) in the same run.
#
# For each collection size: a fresh node, `anyam import` of generated
# objects (timed), then, with the node serving, closed-loop GET of pages of
# 100 at random depths with Basic auth and again with a Bearer token (with
# the server's RSS sampled under load), then POST of 1,000-object envelopes
# into a second collection, twice: first on the node just started, then
# again once its WAL file has grown. Then the same GET and POST workloads against
# medallion loaded with a small collection: its memory backend deep-copies
# the collection and filters it pairwise on every request, so one page
# costs time quadratic in the collection size (seconds at 1,000 objects).
# Prints a table and the ratios; raw JSON lines go to results.jsonl.
#
# The node audits every response and every POST (one audit entry each):
# the audit counter of /metrics is read around each phase, so the table
# also shows audit entries appended per second under that load, and the
# log is verified (`anyam audit verify`) after the node stops. `--anyam
# BIN` benchmarks another build of the node (for example one from before
# a change, to compare), without building this tree's.
#
# Every server it starts listens on 127.0.0.1 and is stopped on exit; every
# load is bounded in time or in count.
#
# Usage: bench/taxii.sh [--sizes 100000,1000000] [--duration 20]
#          [--connections 16] [--post-objects 100000] [--post-connections 2]
#          [--medallion-size 200] [--medallion-post 10000]
#          [--medallion-duration 40] [--no-medallion] [--anyam BIN]
#          [--out DIR (default target/bench-taxii)] [--keep]
set -euo pipefail

SIZES=100000,1000000
DURATION=20
WARMUP=3
CONNECTIONS=16
POST_OBJECTS=100000
POST_CONNECTIONS=2
MED_SIZE=200
MED_POST=10000
MED_DURATION=40
MEDALLION=1
OUT=
KEEP=0
ANYAM_GIVEN=
PASSWORD=bench-admin-pw

while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --post-objects) POST_OBJECTS=$2; shift 2 ;;
        --post-connections) POST_CONNECTIONS=$2; shift 2 ;;
        --medallion-size) MED_SIZE=$2; shift 2 ;;
        --medallion-post) MED_POST=$2; shift 2 ;;
        --medallion-duration) MED_DURATION=$2; shift 2 ;;
        --no-medallion) MEDALLION=0; shift ;;
        --anyam) ANYAM_GIVEN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "taxii.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ANYAM=${ANYAM_GIVEN:-$ROOT/target/release/anyam}
BENCH=$ROOT/target/release/anyam-bench
VENV=$ROOT/.venv

WORK=$(mktemp -d "${TMPDIR:-/tmp}/anyam-bench.XXXXXX")
OUT=${OUT:-$ROOT/target/bench-taxii}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ]; then
        echo "taxii.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_for FILE REGEX PID SECONDS: until FILE has a line matching REGEX.
wait_for() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        if grep -qE "$2" "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$3" 2>/dev/null; then
            echo "taxii.sh: process $3 exited; its log:" >&2; cat "$1" >&2; return 1
        fi
        sleep 0.1
    done
    echo "taxii.sh: timed out waiting for /$2/ in $1" >&2
    return 1
}

# stop PID: stop a server started here and forget it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

now() { date +%s.%N; }

# record LABEL JSON-LINE: add a label and keep the line.
record() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["label"]=sys.argv[1]; print(json.dumps(d))' "$1" "$2" | tee -a "$RESULTS"
}

if [ -n "$ANYAM_GIVEN" ]; then
    log "building the load generator (node: $ANYAM)"
    cargo build --release -q -p anyam-bench
else
    log "building release binaries"
    cargo build --release -q -p anyam-cli -p anyam-bench
fi
# Builds from before the audit log have no `audit` command and no counter.
AUDITED=0
"$ANYAM" audit --help > /dev/null 2>&1 && AUDITED=1

# audit_count PORT: audit entries the node committed so far (-1 if it has
# no such counter).
audit_count() {
    { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } \
        | awk '$1 == "anyam_audit_entries_total" { v = $2 } END { if (v == "") print -1; else printf "%d\n", v }'
}

# audited LABEL PORT COMMAND...: run a load phase, and record how many
# audit entries the node appended during it, per second of the phase.
audited() {
    local label=$1 port=$2 before after t0 t1 out
    shift 2
    before=$(audit_count "$port")
    t0=$(now)
    out=$("$@")
    t1=$(now)
    # Entries are counted once committed, a moment after their responses.
    sleep 0.5
    after=$(audit_count "$port")
    echo "$out"
    if [ "$AUDITED" = 1 ] && [ "$before" -ge 0 ]; then
        record "$label-audit" "$(python3 -c 'import json,sys; n=int(sys.argv[2])-int(sys.argv[1]); s=float(sys.argv[4])-float(sys.argv[3]); print(json.dumps({"bench":"audit","entries":n,"seconds":round(s,3),"entries_per_s":round(n/s,1)}))' "$before" "$after" "$t0" "$t1")" >&2
    fi
}

log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); results in $RESULTS"

# ---------------------------------------------------------------- anyam ----
IFS=, read -r -a SIZE_LIST <<< "$SIZES"
for SIZE in "${SIZE_LIST[@]}"; do
    DIR=$WORK/anyam-$SIZE
    DATA=$DIR/data
    mkdir -p "$DIR"
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT/anyam/

    log "anyam, $SIZE objects: first start"
    ANYAM_ADMIN_PASSWORD=$PASSWORD ANYAM_LOG=warn "$ANYAM" serve --data-dir "$DATA" \
        --listen "127.0.0.1:$PORT" --plain-http > "$DIR/first.log" 2>&1 &
    PID=$!; PIDS+=("$PID")
    wait_for "$DIR/first.log" 'listening on' "$PID" 60
    COLL=$(sed -n 's/^ *collection: *default (\(.*\))$/\1/p' "$DIR/first.log")
    stop "$PID"
    [ -n "$COLL" ] || { echo "taxii.sh: no collection id in the first start's output" >&2; exit 1; }

    log "generating $SIZE objects"
    "$BENCH" gen --count "$SIZE" --seed 1 --out "$DIR/objects.jsonl"

    log "anyam import of $SIZE objects"
    T0=$(now)
    "$ANYAM" import "$DIR/objects.jsonl" --data-dir "$DATA" --collection default > "$DIR/import.log"
    T1=$(now)
    cat "$DIR/import.log" >&2
    grep -q ' 0 rejected' "$DIR/import.log" || { echo "taxii.sh: import rejected objects" >&2; exit 1; }
    record "anyam-$SIZE-import" "$(python3 -c 'import json,sys; n=int(sys.argv[1]); s=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps({"bench":"import","objects":n,"seconds":round(s,3),"objects_per_s":round(n/s,1)}))' "$SIZE" "$T0" "$T1")"
    rm -f "$DIR/objects.jsonl"

    TOKEN=$("$ANYAM" token create admin --data-dir "$DATA" --scope read | sed -n 's/^secret: *//p')
    INGEST=$("$ANYAM" collection add ingest --data-dir "$DATA" | tail -n 1)
    "$ANYAM" grant set host "$INGEST" --read --write --data-dir "$DATA" > /dev/null

    log "anyam, $SIZE objects: serving"
    ANYAM_LOG=warn "$ANYAM" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --plain-http > "$DIR/serve.log" 2>&1 &
    PID=$!; PIDS+=("$PID")
    wait_for "$DIR/serve.log" 'listening on' "$PID" 60
    record "anyam-$SIZE-rss-idle" "$("$BENCH" rss --pid "$PID")"

    log "GET limit=100, $CONNECTIONS connections, ${DURATION}s, Basic auth"
    record "anyam-$SIZE-get-basic" "$(audited "anyam-$SIZE-get-basic" "$PORT" "$BENCH" get --base "$BASE" --collection "$COLL" --user admin --password "$PASSWORD" \
        --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$PID")"
    log "GET limit=100, $CONNECTIONS connections, ${DURATION}s, Bearer token"
    record "anyam-$SIZE-get-bearer" "$(audited "anyam-$SIZE-get-bearer" "$PORT" "$BENCH" get --base "$BASE" --collection "$COLL" --token "$TOKEN" \
        --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$PID")"

    log "POST $POST_OBJECTS objects in envelopes of 1000, $POST_CONNECTIONS connections"
    record "anyam-$SIZE-post" "$(audited "anyam-$SIZE-post" "$PORT" "$BENCH" post --base "$BASE" --collection "$INGEST" --user admin --password "$PASSWORD" \
        --objects "$POST_OBJECTS" --batch 1000 --connections "$POST_CONNECTIONS" --seed 2)"
    # The node started without a WAL file, so the first POST also grew it;
    # the same load again shows what a node that has been writing a while sees.
    log "POST $POST_OBJECTS other objects again, the WAL file now grown"
    record "anyam-$SIZE-post-again" "$(audited "anyam-$SIZE-post-again" "$PORT" "$BENCH" post --base "$BASE" --collection "$INGEST" --user admin --password "$PASSWORD" \
        --objects "$POST_OBJECTS" --batch 1000 --connections "$POST_CONNECTIONS" --seed 3)"
    record "anyam-$SIZE-rss-after" "$("$BENCH" rss --pid "$PID")"
    stop "$PID"
    du -sh "$DATA" >&2
    if [ "$AUDITED" = 1 ]; then
        log "verifying the audit log the load wrote"
        "$ANYAM" audit verify --data-dir "$DATA" > "$DIR/audit-verify.json"
        record "anyam-$SIZE-audit-verify" "$(python3 -c 'import json,os,sys; d=json.load(open(sys.argv[1])); print(json.dumps({"bench":"audit-verify","entries":d["entries"],"unsigned_entries":d["unsigned_entries"],"audit_db_mb":round(os.path.getsize(sys.argv[2])/1048576,1)}))' "$DIR/audit-verify.json" "$DATA/audit.db")"
    fi
    [ "$KEEP" = 1 ] || rm -rf "$DATA"
done

# ------------------------------------------------------------ medallion ----
if [ "$MEDALLION" = 1 ]; then
    if [ ! -x "$VENV/bin/medallion" ]; then
        log "creating the Python venv (cargo xtask venv)"
        cargo xtask venv
    fi
    DIR=$WORK/medallion
    mkdir -p "$DIR"
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT/api1/
    MCOLL=9a4f29c6-2b9e-4c4f-8f25-52b0a0a1b001
    MINGEST=9a4f29c6-2b9e-4c4f-8f25-52b0a0a1b002

    log "medallion $("$VENV/bin/python" -c 'import medallion; print(medallion.__version__)'), memory backend, $MED_SIZE objects"
    "$BENCH" gen --count "$MED_SIZE" --seed 1 --out "$DIR/objects.jsonl"
    # The memory backend's data file: discovery, one API root, a collection
    # with the objects and their manifest (date_added one millisecond apart),
    # and an empty collection to post into.
    RANGE=$("$VENV/bin/python" - "$DIR" "$PORT" "$MCOLL" "$MINGEST" "$PASSWORD" <<'PY'
import datetime as dt, json, sys
d, port, coll, ingest, password = sys.argv[1:6]
objs = [json.loads(l) for l in open(f"{d}/objects.jsonl")]
start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
manifest = []
for i, o in enumerate(objs):
    added = fmt(start + dt.timedelta(milliseconds=i))
    version = o.get("modified", o.get("created"))
    if version is None:
        o["_date_added"] = version = added
    manifest.append({"id": o["id"], "date_added": added, "version": version,
                     "media_type": "application/stix+json;version=2.1"})
url = f"http://127.0.0.1:{port}/"
def collection(cid, title, objects, manifest):
    return {"id": cid, "title": title, "description": "", "can_read": True, "can_write": True,
            "media_types": ["application/stix+json;version=2.1"], "objects": objects, "manifest": manifest}
data = {
    "/discovery": {"title": "medallion (benchmark)", "description": "", "contact": "",
                   "default": url + "api1/", "api_roots": [url + "api1/"]},
    "api1": {
        "information": {"title": "api1", "description": "", "versions": ["application/taxii+json;version=2.1"],
                        "max_content_length": 104857600},
        "status": [],
        "collections": [collection(coll, "default", objs, manifest), collection(ingest, "ingest", [], [])],
    },
}
json.dump(data, open(f"{d}/data.json", "w"))
config = {"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                      "filename": f"{d}/data.json"},
          "users": {"admin": password}, "taxii": {"max_page_size": 100}}
json.dump(config, open(f"{d}/config.json", "w"))
print(manifest[0]["date_added"] + "," + manifest[-1]["date_added"])
PY
)
    "$VENV/bin/medallion" --host 127.0.0.1 --port "$PORT" --log-level ERROR "$DIR/config.json" > "$DIR/serve.log" 2>&1 &
    PID=$!; PIDS+=("$PID")
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null -u "admin:$PASSWORD" -H 'Accept: application/taxii+json;version=2.1' "http://127.0.0.1:$PORT/taxii2/"; then
            break
        fi
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/serve.log" >&2; exit 1; }
        sleep 0.2
    done
    record "medallion-$MED_SIZE-rss-idle" "$("$BENCH" rss --pid "$PID")"
    # No warm-up and a longer window: one medallion response takes seconds
    # under this concurrency, and a warm-up shorter than a response would
    # throw the first round away and leave too few samples.
    log "medallion GET limit=100, $CONNECTIONS connections, ${MED_DURATION}s, Basic auth"
    record "medallion-$MED_SIZE-get-basic" "$("$BENCH" get --base "$BASE" --collection "$MCOLL" --user admin --password "$PASSWORD" \
        --connections "$CONNECTIONS" --duration "$MED_DURATION" --warmup 0 --server-pid "$PID" --added-range "$RANGE" --timeout 300)"
    log "medallion POST $MED_POST objects in envelopes of 1000, $POST_CONNECTIONS connections"
    record "medallion-$MED_SIZE-post" "$("$BENCH" post --base "$BASE" --collection "$MINGEST" --user admin --password "$PASSWORD" \
        --objects "$MED_POST" --batch 1000 --connections "$POST_CONNECTIONS" --seed 2)"
    stop "$PID"
fi

# ---------------------------------------------------------------- table ----
python3 - "$RESULTS" "$MED_SIZE" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows[d["label"]] = d
med_size = sys.argv[2]
def g(label, key):
    v = rows.get(label, {}).get(key)
    return v
def f(v, fmt="{:,.0f}"):
    if v is not None and fmt == "{:,.0f}" and abs(v) < 10:
        fmt = "{:.1f}"
    return "-" if v is None else fmt.format(v)
sizes = sorted({int(k.split("-")[1]) for k in rows if k.startswith("anyam-")})
med = f"medallion-{med_size}"
print()
print(f"{'server':<26}{'GET req/s':>11}{'p99 ms':>9}{'GET req/s':>11}{'p99 ms':>9}{'import obj/s':>14}{'POST obj/s':>12}{'POST obj/s':>12}{'RSS MB':>9}")
print(f"{'':<26}{'(Basic)':>11}{'(Basic)':>9}{'(Bearer)':>11}{'(Bearer)':>9}{'':>14}{'(first)':>12}{'(again)':>12}{'(load)':>9}")
for n in sizes:
    a = f"anyam-{n}"
    rss = max(filter(None, [g(a + "-get-basic", "server_max_rss_mb"), g(a + "-get-bearer", "server_max_rss_mb")]), default=None)
    print(f"{'anyam, ' + format(n, ',') + ' objects':<26}{f(g(a+'-get-basic','req_per_s')):>11}{f(g(a+'-get-basic','p99_ms'),'{:.2f}'):>9}"
          f"{f(g(a+'-get-bearer','req_per_s')):>11}{f(g(a+'-get-bearer','p99_ms'),'{:.2f}'):>9}"
          f"{f(g(a+'-import','objects_per_s')):>14}{f(g(a+'-post','objects_per_s')):>12}"
          f"{f(g(a+'-post-again','objects_per_s')):>12}{f(rss,'{:.1f}'):>9}")
audit = [n for n in sizes if f"anyam-{n}-get-basic-audit" in rows]
if audit:
    print()
    print("audit entries appended per second (one per response or POST), during each phase:")
    for n in audit:
        a = f"anyam-{n}"
        parts = [f"{name} {f(g(f'{a}-{phase}-audit','entries_per_s'))}/s ({f(g(f'{a}-{phase}-audit','entries'))} entries)"
                 for name, phase in (("GET Basic", "get-basic"), ("GET Bearer", "get-bearer"), ("POST", "post"), ("POST again", "post-again"))]
        v = rows.get(f"{a}-audit-verify")
        tail = f"; log verified: {v['entries']:,} entries, {v['audit_db_mb']} MB" if v else ""
        print(f"  anyam at {n:,}: " + ", ".join(parts) + tail)
if med + "-get-basic" in rows:
    print(f"{'medallion, ' + format(int(med_size), ',') + ' objects':<26}{f(g(med+'-get-basic','req_per_s')):>11}{f(g(med+'-get-basic','p99_ms'),'{:.2f}'):>9}"
          f"{'':>11}{'':>9}{'-':>14}{f(g(med+'-post','objects_per_s')):>12}{'-':>12}{f(g(med+'-get-basic','server_max_rss_mb'),'{:.1f}'):>9}")
    print()
    print(f"ratios, anyam / medallion (medallion at {int(med_size):,} objects, memory backend, Basic auth):")
    for n in sizes:
        a = f"anyam-{n}"
        def ratio(x, y):
            return "-" if not x or not y else f"{x / y:,.1f}x"
        print(f"  anyam at {n:,}: GET req/s {ratio(g(a+'-get-basic','req_per_s'), g(med+'-get-basic','req_per_s'))}, "
              f"p99 latency {ratio(g(med+'-get-basic','p99_ms'), g(a+'-get-basic','p99_ms'))} lower, "
              f"POST objects/s {ratio(g(a+'-post','objects_per_s'), g(med+'-post','objects_per_s'))}")
PY
echo
echo "raw results: $RESULTS"
