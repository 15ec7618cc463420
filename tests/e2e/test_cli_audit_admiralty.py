"""`anyam import`, `anyam export` and `anyam detect` in the audit log, and
the Admiralty code in the CLI: an import is a `receipt` entry listing the
versions it stored, an export a `release` entry listing the versions it
wrote, sightings written by detection are receipts of the detect process;
`anyam audit verify` passes on all of it; export filters by source
reliability and information credibility; alerts and export summaries show
the rating; a log that cannot be opened stops each command before it
writes anything."""

from __future__ import annotations

import json
import sqlite3
import uuid

from support import audit_entries, indicator, malware

EXIT_USAGE = 2

RELIABILITY_EXT = "extension-definition--2e2ab2c2-eecf-4d4b-83ed-a9348fbb68c6"

ZEEK_HEADER = "\n".join(
    [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2026-01-01-00-00-00",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration"
        "\torig_bytes\tresp_bytes\tconn_state",
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring",
    ]
)


def conn_line(ts: float, dst: str) -> str:
    uid = "C" + uuid.uuid4().hex[:17]
    return f"{ts:.6f}\t{uid}\t192.0.2.10\t49152\t{dst}\t443\ttcp\tssl\t1.0\t100\t200\tSF"


def rated(o: dict, reliability: str | None = None, confidence: int | None = None) -> dict:
    """The object graded by the Admiralty code: source reliability in the
    node's property extension, credibility as STIX `confidence`."""
    if reliability is not None:
        o["extensions"] = {
            RELIABILITY_EXT: {"extension_type": "property-extension", "source_reliability": reliability}
        }
    if confidence is not None:
        o["confidence"] = confidence
    return o


def entries(node) -> list[dict]:
    """Every audit entry, in sequence order, read from the node's file."""
    con = sqlite3.connect(f"file:{node.dir / 'audit.db'}?mode=ro", uri=True)
    try:
        return audit_entries(con)
    finally:
        con.close()


def of_command(node, command: str, since: int = 0) -> list[dict]:
    return [e for e in entries(node)[since:] if e.get("details", {}).get("command") == command]


def pairs(objects: list[dict]) -> set[tuple[str, str]]:
    return {(o["id"], o["version"]) for o in objects}


def versions_of(objects: list[dict]) -> list[dict]:
    return [{"id": o["id"], "version": o["modified"]} for o in objects]


def write_bundle(path, objects: list[dict]) -> None:
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))


def exported(path) -> list[dict]:
    return json.loads(path.read_text())["objects"]


def verify(node) -> dict:
    return json.loads(node.cli("audit", "verify").stdout)


def test_import_and_export_are_receipt_and_release_entries(make_node, tmp_path):
    node = make_node().start()
    cid = node.add_collection("transfer")
    objs = [indicator(1), indicator(2, modified="2024-02-01T00:00:00.000Z"), malware(3)]
    src = tmp_path / "in.json"
    write_bundle(src, objs)
    n0 = len(entries(node))

    r = node.cli("import", src, "--collection", cid)
    assert "3 added" in r.stdout, r.stdout
    [receipt] = of_command(node, "import", n0)
    assert receipt["kind"] == "receipt"
    assert receipt["actor"].startswith("operator:")
    assert receipt["what"]["collection"] == cid
    assert receipt["what"]["path"] == str(src)
    assert receipt["what"]["objects"] == versions_of(objs)
    assert receipt["details"]["file"] == str(src)
    assert receipt["details"]["added"] == "3" and receipt["details"]["rejected"] == "0"
    assert verify(node)["entries"] == len(entries(node))

    # A second run stores nothing new and is a receipt all the same; an
    # invalid object is counted, and not listed.
    broken = dict(indicator(4), pattern="[not a pattern")
    write_bundle(src, objs + [broken])
    n1 = len(entries(node))
    r = node.cli("import", src, "--collection", cid, check=False)
    assert r.returncode == 3, r.stderr
    [again] = of_command(node, "import", n1)
    assert again["what"]["objects"] == versions_of(objs)
    assert again["details"]["unchanged"] == "3" and again["details"]["rejected"] == "1"

    out = tmp_path / "out.json"
    n2 = len(entries(node))
    node.cli("export", "--collection", cid, "-o", out)
    got = exported(out)
    assert {o["id"] for o in got} == {o["id"] for o in objs}
    [release] = of_command(node, "export", n2)
    assert release["kind"] == "release"
    assert release["actor"].startswith("operator:")
    assert release["parties"] == ["host"]
    assert release["what"]["collection"] == cid
    assert release["what"]["path"] == str(out)
    assert release["details"]["as_user"] == "admin"
    assert release["details"]["count"] == "3"
    assert pairs(release["what"]["objects"]) == pairs(versions_of(got))
    assert "admiralty_filter" not in release["details"]
    assert verify(node)["entries"] == len(entries(node))


def test_a_large_import_keeps_one_receipt_per_batch_of_five_thousand(make_node, tmp_path):
    """The import stores several of its batches in one transaction; each
    batch still has its own receipt, numbered in input order, listing
    exactly the versions it stored and counting what it refused."""
    node = make_node().start()
    cid = node.add_collection("large-import")
    objs = [indicator(100_000 + i) for i in range(12_001)]
    broken = dict(objs[5_500], pattern="[not a pattern")
    items = objs[:5_500] + [broken] + objs[5_501:]
    src = tmp_path / "large.json"
    write_bundle(src, items)
    n0 = len(entries(node))
    r = node.cli("import", src, "--collection", cid, check=False)
    assert r.returncode == 3, r.stderr
    assert "12000 added" in r.stdout, r.stdout
    receipts = of_command(node, "import", n0)
    assert [e["details"]["batch"] for e in receipts] == ["1", "2", "3"]
    assert [e["details"]["total"] for e in receipts] == ["5000", "5000", "2001"]
    assert [e["details"]["added"] for e in receipts] == ["5000", "4999", "2001"]
    assert [e["details"]["rejected"] for e in receipts] == ["0", "1", "0"]
    assert receipts[0]["what"]["objects"] == versions_of(objs[:5_000])
    assert receipts[1]["what"]["objects"] == versions_of(objs[5_000:5_500] + objs[5_501:10_000])
    assert receipts[2]["what"]["objects"] == versions_of(objs[10_000:])
    assert verify(node)["entries"] == len(entries(node))


def test_export_filters_by_the_admiralty_code_and_shows_ratings(make_node, tmp_path):
    node = make_node().start()
    cid = node.add_collection("graded")
    objs = {
        "A1": rated(indicator(1), "A", 90),
        "B2": rated(indicator(2), "B", 70),
        "B4": rated(indicator(3), "B", 30),
        "C2": rated(indicator(4), "C", 65),
        "F1": rated(indicator(5), None, 85),  # reliability unknown: counts as F
        "unrated": indicator(6),
    }
    src = tmp_path / "graded.json"
    write_bundle(src, list(objs.values()))
    node.cli("import", src, "--collection", cid)

    # (flags, ratings expected out)
    cases = [
        ([], set(objs)),
        (["--min-reliability", "B"], {"A1", "B2", "B4"}),
        (["--min-credibility", "2"], {"A1", "B2", "C2", "F1"}),
        (["--min-reliability", "b", "--min-credibility", "2"], {"A1", "B2"}),
        (["--min-reliability", "F", "--min-credibility", "6"], set(objs)),
        (["--min-reliability", "A", "--min-credibility", "1"], {"A1"}),
    ]
    for flags, want in cases:
        out = tmp_path / f"out-{uuid.uuid4().hex[:6]}.json"
        n0 = len(entries(node))
        r = node.cli("export", "--collection", cid, "-o", out, *flags)
        got = {o["id"] for o in exported(out)}
        assert got == {objs[k]["id"] for k in want}, (flags, r.stderr)
        [release] = of_command(node, "export", n0)
        assert {o["id"] for o in release["what"]["objects"]} == got, flags
        if flags:
            assert f"{len(objs) - len(want)} left out by the Admiralty filter" in r.stderr, r.stderr
            assert release["details"]["filtered_out"] == str(len(objs) - len(want))
            f = release["details"]["admiralty_filter"]
            assert set(f) <= {"min_reliability", "min_credibility"} and f, f

    # The summary names each object's rating, and no rating where it has none.
    r = node.cli("export", "--collection", cid, "-o", tmp_path / "summary.json", "--summary")
    lines = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    by_id = {x["id"]: x for x in lines}
    assert set(by_id) == {o["id"] for o in objs.values()}
    for rating, o in objs.items():
        line = by_id[o["id"]]
        assert line["type"] == "indicator" and line["version"] == o["modified"]
        if rating == "unrated":
            assert line["admiralty"] is None
        else:
            assert line["admiralty"] == rating
    assert by_id[objs["B2"]["id"]]["admiralty_description"] == "B2 (usually reliable, probably true)"

    # Grades outside the code are usage errors.
    for flags in (["--min-reliability", "G"], ["--min-credibility", "0"], ["--min-credibility", "x"]):
        r = node.cli("export", "--collection", cid, *flags, check=False)
        assert r.returncode == EXIT_USAGE, (flags, r.stderr)
    assert verify(node)["entries"] == len(entries(node))


def test_detect_audits_sighting_writes_and_alerts_show_the_rating(make_node, tmp_path):
    node = make_node("detect").start()
    cid = node.add_collection("intel")
    graded = rated(indicator(1, valid_from="2020-01-01T00:00:00Z"), "B", 70)
    graded["pattern"] = "[ipv4-addr:value = '198.51.100.20']"
    plain = indicator(2, valid_from="2020-01-01T00:00:00Z")
    plain["pattern"] = "[ipv4-addr:value = '198.51.100.30']"
    src = tmp_path / "intel.json"
    write_bundle(src, [graded, plain])
    node.cli("import", src, "--collection", cid)

    log = tmp_path / "conn.log"
    log.write_text(
        ZEEK_HEADER + "\n" + conn_line(1767225601.0, "198.51.100.20") + "\n"
        + conn_line(1767225602.0, "198.51.100.30") + "\n"
    )
    alerts = tmp_path / "alerts.jsonl"
    n0 = len(entries(node))
    r = node.cli("detect", "-i", f"zeek:{log}", "--alerts", alerts, "-q")
    got = {a["indicator"]["id"]: a for a in map(json.loads, alerts.read_text().splitlines())}
    assert set(got) == {graded["id"], plain["id"]}
    assert got[graded["id"]]["indicator"]["admiralty"] == "B2"
    assert got[graded["id"]]["indicator"]["admiralty_description"] == "B2 (usually reliable, probably true)"
    assert "admiralty" not in got[plain["id"]]["indicator"]
    [summary] = [json.loads(x)["summary"] for x in r.stderr.splitlines() if x.startswith('{"summary"')]
    assert summary["alerts_by_admiralty"] == {"B2": 1, "unrated": 1}

    # Every version the run stored in the sightings collection is listed by
    # a receipt of the detect process, acting for the node's identity.
    sid = summary["sightings"]["collection"]
    receipts = [e for e in entries(node)[n0:] if e["kind"] == "receipt"]
    assert receipts, entries(node)[n0:]
    identity = None
    for e in receipts:
        assert e["actor"].startswith("detect:identity--"), e
        assert e["what"]["collection"] == sid
        assert e["parties"] == ["host"]
        assert e["details"]["command"] == "detect"
        assert e["details"]["operator"].startswith("operator:")
        identity = e["actor"].removeprefix("detect:")
    audited = set().union(*(pairs(e["what"]["objects"]) for e in receipts))
    c = node.collection(sid)
    stored = set()
    for o in c.get_objects()["objects"]:
        for v in c.object_versions(o["id"])["versions"]:
            stored.add((o["id"], v))
    assert audited == stored
    sightings = [x for x in c.get_objects()["objects"] if x["type"] == "sighting"]
    assert {s["sighting_of_ref"] for s in sightings} == {graded["id"], plain["id"]}
    assert {i for i, _ in stored if i.startswith("identity--")} == {identity}

    # A second run writes new versions, audited as well; the identity, stored
    # already, is not received again.
    n1 = len(entries(node))
    node.cli("detect", "-i", f"zeek:{log}", "--alerts", tmp_path / "again.jsonl", "-q")
    later = [e for e in entries(node)[n1:] if e["kind"] == "receipt"]
    listed = set().union(*(pairs(e["what"]["objects"]) for e in later))
    assert {i.split("--")[0] for i, _ in listed} == {"sighting"}
    assert {s["id"] for s in sightings} == {i for i, _ in listed}
    assert verify(node)["entries"] == len(entries(node))


def test_a_log_that_cannot_be_opened_stops_each_command_before_it_writes(make_node, tmp_path):
    node = make_node().start()
    cid = node.add_collection("locked")
    ind = indicator(1, valid_from="2020-01-01T00:00:00Z")
    ind["pattern"] = "[ipv4-addr:value = '198.51.100.20']"
    src = tmp_path / "in.json"
    write_bundle(src, [ind])
    node.stop()
    audit = node.dir / "audit.db"
    aside = tmp_path / "audit.db.aside"
    audit.rename(aside)
    for suffix in ("-wal", "-shm"):
        p = node.dir / f"audit.db{suffix}"
        if p.exists():
            p.rename(tmp_path / f"audit.db{suffix}.aside")
    # A directory where the file should be: no database can be opened there.
    audit.mkdir()
    try:
        r = node.cli("import", src, "--collection", cid, check=False)
        assert r.returncode == 1 and "audit log" in r.stderr, r.stderr
        out = tmp_path / "out.json"
        r = node.cli("export", "--collection", cid, "-o", out, check=False)
        assert r.returncode == 1 and "audit log" in r.stderr, r.stderr
        assert not out.exists()
        log = tmp_path / "conn.log"
        log.write_text(ZEEK_HEADER + "\n" + conn_line(1767225601.0, "198.51.100.20") + "\n")
        r = node.cli("detect", "-i", f"zeek:{log}", "-q", check=False)
        assert r.returncode == 1 and "audit log" in r.stderr, r.stderr
    finally:
        audit.rmdir()
        aside.rename(audit)
        for suffix in ("-wal", "-shm"):
            p = tmp_path / f"audit.db{suffix}.aside"
            if p.exists():
                p.rename(node.dir / f"audit.db{suffix}")
    # Nothing was stored while the log could not be written.
    out = tmp_path / "after.json"
    node.cli("export", "--collection", cid, "-o", out)
    assert exported(out) == []
    assert verify(node)["entries"] == len(entries(node))
