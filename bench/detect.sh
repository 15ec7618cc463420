#!/usr/bin/env bash
# Detection benchmarks of `anyam detect`, with the OASIS reference matcher
# (stix2-matcher, in the project's .venv) on the same workload in one run.
#
# 1. The reference matcher's own kind of workload: N mixed patterns (single
#    observation: equality, IN, ISSUBSET, LIKE, MATCHES, ordering, !=,
#    NOT IN, EXISTS, timestamps, references; across observations: AND, OR,
#    FOLLOWEDBY, WITHIN, REPEATS, START/STOP) and N STIX 2.1 observed-data
#    within 50 minutes.
#    The reference matches each single-observation pattern against each
#    observation alone, and each multi-observation pattern once against the
#    whole list; `anyam detect` reads the same files. Hit sets must be
#    identical ((indicator, observation) pairs; "fired or not" for
#    multi-observation patterns): any difference is listed and the script
#    exits 1. Prints both times and their ratio.
# 2. End-to-end rates, parsing included: a realistic indicator file (70%
#    equality on IPv4/domain/URL/SHA-256, 10% IN, 10% CIDR, 5% LIKE,
#    5% MATCHES) against generated Zeek TSV and JSON conn logs, Suricata
#    EVE (flow, dns, http) and STIX observed-data, one run per format.
#
# All data is generated from --seed into a temporary directory (or --work).
# Prints a table; raw JSON lines go to results.jsonl in --out.
#
# Usage: bench/detect.sh [--patterns 1000] [--observations 1000]
#          [--multi-share 0.15] [--events 1000000] [--indicators 100000]
#          [--formats zeek-tsv,zeek-json,eve,stix] [--seed 1]
#          [--skip-reference] [--skip-rates] [--repeat 3]
#          [--work DIR (default a new temporary directory)] [--keep]
#          [--out DIR (default target/bench-detect)]
set -euo pipefail

PATTERNS=1000
OBSERVATIONS=1000
MULTI_SHARE=0.15
EVENTS=1000000
INDICATORS=100000
FORMATS=zeek-tsv,zeek-json,eve,stix
SEED=1
REFERENCE=1
RATES=1
REPEAT=3
WORK=
KEEP=0
OUT=

while [ $# -gt 0 ]; do
    case "$1" in
        --patterns) PATTERNS=$2; shift 2 ;;
        --observations) OBSERVATIONS=$2; shift 2 ;;
        --multi-share) MULTI_SHARE=$2; shift 2 ;;
        --events) EVENTS=$2; shift 2 ;;
        --indicators) INDICATORS=$2; shift 2 ;;
        --formats) FORMATS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --skip-reference) REFERENCE=0; shift ;;
        --skip-rates) RATES=0; shift ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "detect.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ANYAM=$ROOT/target/release/anyam
VENV=$ROOT/.venv
GEN=$ROOT/bench/detect_workload.py

if [ -n "$WORK" ]; then
    mkdir -p "$WORK"
    OWN_WORK=0
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/anyam-bench-detect.XXXXXX")
    OWN_WORK=1
fi
OUT=${OUT:-$ROOT/target/bench-detect}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

cleanup() {
    if [ "$KEEP" = 1 ] || [ "$OWN_WORK" = 0 ]; then
        echo "detect.sh: data kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }
now() { date +%s.%N; }

# record LABEL JSON-LINE: add a label and keep the line.
record() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["label"]=sys.argv[1]; print(json.dumps(d))' "$1" "$2" >> "$RESULTS"
}

# detect LABEL ALERTS INDICATORS INPUT: one `anyam detect` run, timed from
# outside (process start to exit); records its summary and the wall time.
detect() {
    local label=$1 alerts=$2 indicators=$3 input=$4 t0 t1 rc=0
    t0=$(now)
    "$ANYAM" detect -q --indicators "$indicators" -i "$input" --alerts "$alerts" \
        2> "$WORK/$label.stderr" || rc=$?
    t1=$(now)
    if [ "$rc" != 0 ]; then
        echo "detect.sh: anyam detect exited $rc on $input; its stderr:" >&2
        tail -n 20 "$WORK/$label.stderr" >&2
        exit 1
    fi
    local summary
    summary=$(grep '^{"summary"' "$WORK/$label.stderr" | tail -n 1)
    if grep -q '^{"refused"' "$WORK/$label.stderr"; then
        echo "detect.sh: anyam refused indicators:" >&2
        grep '^{"refused"' "$WORK/$label.stderr" | head -n 5 >&2
    fi
    record "$label" "$(python3 -c 'import json,sys; s=json.loads(sys.argv[1])["summary"]; w=float(sys.argv[3])-float(sys.argv[2]); print(json.dumps({"wall_seconds":round(w,4),"events":s["events"],"hits":s["hits"],"events_per_second":s["events_per_second"],"loop_seconds":s["seconds"],"load_seconds":s["indicators"]["load_seconds"],"indicators":s["indicators"]["loaded"],"refused":s["indicators"]["refused"],"malformed":s["malformed"],"candidates":s["engine"]["candidates"],"evaluations":s["engine"]["evaluations"],"eval_errors":s["engine"]["eval_errors"]}))' "$summary" "$t0" "$t1")"
}

log "building the release binary"
cargo build --release -q --bin anyam

log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); data in $WORK; results in $RESULTS"

MISMATCH=0

# ------------------------------------------------ reference comparison ----
MATCH=$WORK/match
mkdir -p "$MATCH"
log "generating $PATTERNS patterns and $OBSERVATIONS observations (seed $SEED)"
python3 "$GEN" gen-match "$MATCH" --patterns "$PATTERNS" --observations "$OBSERVATIONS" \
    --multi-share "$MULTI_SHARE" --seed "$SEED" >&2

if [ "$REFERENCE" = 1 ]; then
    if ! "$VENV/bin/python" -c 'import stix2matcher.matcher' 2> /dev/null; then
        log "creating the Python venv (cargo xtask venv)"
        cargo xtask venv
    fi
    log "reference matcher $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("stix2-matcher"))') (this takes minutes)"
    T0=$(now)
    "$VENV/bin/python" "$GEN" reference "$MATCH" > "$MATCH/reference.out"
    T1=$(now)
    record reference "$(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); d["process_wall_seconds"]=round(float(sys.argv[3])-float(sys.argv[2]),3); print(json.dumps(d))' "$MATCH/reference.out" "$T0" "$T1")"
fi

log "anyam detect on the same workload ($REPEAT runs)"
for i in $(seq 1 "$REPEAT"); do
    detect "match-$i" "$MATCH/alerts.jsonl" "$MATCH/indicators.jsonl" "stix:$MATCH/observations.jsonl"
done

if [ "$REFERENCE" = 1 ]; then
    log "comparing hits"
    if python3 "$GEN" compare "$MATCH" "$MATCH/alerts.jsonl" > "$MATCH/compare.out" 2> "$MATCH/compare.err"; then
        :
    else
        MISMATCH=1
    fi
    cat "$MATCH/compare.err" >&2
    record compare "$(cat "$MATCH/compare.out")"
fi

# ----------------------------------------------------- end-to-end rates ----
if [ "$RATES" = 1 ]; then
    RATE=$WORK/rates
    mkdir -p "$RATE"
    log "generating $INDICATORS indicators"
    python3 "$GEN" gen-indicators "$RATE/indicators.jsonl" --count "$INDICATORS" --seed "$SEED" >&2
    IFS=, read -r -a FORMAT_LIST <<< "$FORMATS"
    for F in "${FORMAT_LIST[@]}"; do
        case "$F" in
            zeek-tsv|zeek-json) KIND=zeek ;;
            eve) KIND=eve ;;
            stix) KIND=stix ;;
            *) echo "detect.sh: unknown format $F" >&2; exit 2 ;;
        esac
        mkdir -p "$RATE/$F"
        FILE=$RATE/$F/conn.log
        [ "$F" = eve ] && FILE=$RATE/$F/eve.json
        [ "$F" = stix ] && FILE=$RATE/$F/observations.jsonl
        log "generating $EVENTS $F records"
        python3 "$GEN" gen-events "$F" "$FILE" --events "$EVENTS" --indicators "$INDICATORS" --seed "$SEED" >&2
        log "anyam detect, $F, $INDICATORS indicators"
        detect "rate-$F" "$RATE/$F/alerts.jsonl" "$RATE/indicators.jsonl" "$KIND:$FILE"
        record "size-$F" "{\"bytes\": $(stat -c %s "$FILE")}"
        [ "$KEEP" = 1 ] || rm -f "$FILE"
    done
fi

# ---------------------------------------------------------------- table ----
python3 - "$RESULTS" "$REPEAT" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows[d["label"]] = d
repeat = int(sys.argv[2])
runs = [rows[f"match-{i}"] for i in range(1, repeat + 1) if f"match-{i}" in rows]
print()
if runs:
    wall = statistics.median(r["wall_seconds"] for r in runs)
    loop = statistics.median(r["loop_seconds"] for r in runs)
    load = statistics.median(r["load_seconds"] for r in runs)
    ref = rows.get("reference")
    cmp = rows.get("compare")
    r0 = runs[0]
    print(f"reference workload: {r0['indicators']:,} patterns x {r0['events']:,} observations")
    if cmp:
        print(f"  patterns: {cmp['single_observation_patterns']:,} over one observation, "
              f"{cmp['multi_observation_patterns']:,} across observations")
        print(f"  hits compared: {cmp['single_pairs_reference']:,} (indicator, observation) pairs "
              f"from {cmp['single_patterns_with_hits']:,} patterns; "
              f"{cmp['multi_fired_reference']:,} multi-observation patterns fired "
              f"({cmp['multi_alerts_anyam']:,} anyam alerts)")
        print(f"  mismatches: {cmp['mismatches']} (reference hit, anyam not: {cmp['missing']}; "
              f"anyam hit, reference not: {cmp['extra']}; multi missing: {cmp['multi_missing']}; "
              f"multi extra: {cmp['multi_extra']})")
        print(f"  reference raised on {cmp['reference_errors']:,} (pattern, observation) cases, left out; "
              f"anyam hit {cmp['anyam_hits_where_reference_raised']:,} of them")
    print()
    print(f"{'':<44}{'seconds':>10}")
    if ref:
        print(f"{'reference: compile + match (in process)':<44}{ref['seconds']:>10.2f}")
        print(f"{'  of which compile':<44}{ref['compile_seconds']:>10.2f}")
        print(f"{'  whole process (start-up, JSON parsing)':<44}{ref['process_wall_seconds']:>10.2f}")
    print(f"{'anyam detect: whole process, median of ' + str(len(runs)):<44}{wall:>10.3f}")
    print(f"{'  of which loading indicators':<44}{load:>10.3f}")
    print(f"{'  of which reading + matching events':<44}{loop:>10.3f}")
    if ref:
        print()
        print(f"ratio, reference (compile + match) / anyam (whole process): {ref['seconds'] / wall:,.0f}x")
        print(f"ratio, reference (compile + match) / anyam (load + match): {ref['seconds'] / (load + loop):,.0f}x")
fmts = [k[len("rate-"):] for k in rows if k.startswith("rate-")]
if fmts:
    print()
    print(f"{'input':<14}{'events':>11}{'MB':>8}{'indicators':>12}{'hits':>9}"
          f"{'events/s':>11}{'events/s':>11}{'load s':>8}")
    print(f"{'':<14}{'':>11}{'':>8}{'':>12}{'':>9}{'(summary)':>11}{'(wall)':>11}{'':>8}")
    for f in fmts:
        r = rows[f"rate-{f}"]
        mb = rows.get(f"size-{f}", {}).get("bytes", 0) / 1e6
        print(f"{f:<14}{r['events']:>11,}{mb:>8,.0f}{r['indicators']:>12,}{r['hits']:>9,}"
              f"{r['events_per_second']:>11,.0f}{r['events'] / r['wall_seconds']:>11,.0f}{r['load_seconds']:>8.1f}")
    print("events/s (summary): events over the reading + matching loop, parsing included;")
    print("events/s (wall): events over the whole process, indicator loading and start-up included.")
PY
echo
echo "raw results: $RESULTS"
if [ "$MISMATCH" = 1 ]; then
    echo >&2
    echo "detect.sh: MISMATCHES between anyam detect and the reference matcher; see above and $MATCH/compare.err" >&2
    KEEP=1
    exit 1
fi
