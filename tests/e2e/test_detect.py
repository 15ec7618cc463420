"""Detection end to end: indicators POSTed over TAXII, sensor logs fed to
`anyam detect` (a separate process reading the node's store), alerts
checked; live updates while detection follows a growing log."""

import json
import signal
import subprocess
import time
import uuid

import pytest

from support import anyam_bin, assert_stix_valid, indicator, post_envelope

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


def conn_line(ts: float, dst: str, port: int = 443) -> str:
    uid = "C" + uuid.uuid4().hex[:17]
    return f"{ts:.6f}\t{uid}\t192.0.2.10\t49152\t{dst}\t{port}\ttcp\tssl\t1.0\t100\t200\tSF"


def ind(pattern: str, name: str, **extra) -> dict:
    o = indicator(name=name, **extra)
    o["name"] = name
    o["pattern"] = pattern
    o["valid_from"] = "2020-01-01T00:00:00Z"
    return o


def eve_dns(ts: str, rrname: str) -> str:
    return json.dumps(
        {
            "timestamp": ts,
            "flow_id": 1,
            "event_type": "dns",
            "src_ip": "192.0.2.10",
            "src_port": 5353,
            "dest_ip": "198.51.100.53",
            "dest_port": 53,
            "proto": "UDP",
            "dns": {"type": "query", "id": 1, "rrname": rrname, "rrtype": "A"},
        }
    )


def alerts_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def summary_of(stderr: str) -> dict:
    for line in reversed(stderr.splitlines()):
        if line.startswith('{"summary"'):
            return json.loads(line)["summary"]
    raise AssertionError(f"no summary in {stderr!r}")


@pytest.fixture
def detect_node(make_node):
    n = make_node("detect").start()
    yield n


def test_indicators_posted_over_taxii_match_sensor_logs(detect_node, tmp_path):
    n = detect_node
    cid = n.add_collection("intel")
    s = n.session()
    c2 = ind("[ipv4-addr:value = '198.51.100.20']", "C2 server")
    block = ind("[ipv4-addr:value ISSUBSET '203.0.113.0/24']", "Hostile block")
    dga = ind("[domain-name:value MATCHES '^[a-z0-9]{12}\\\\.example\\\\.org$']", "DGA domains")
    seq = ind(
        "[ipv4-addr:value = '198.51.100.20'] FOLLOWEDBY [domain-name:value = 'exfil.example.net'] "
        "WITHIN 600 SECONDS",
        "Beacon then exfiltration",
    )
    quiet = ind("[ipv4-addr:value = '192.0.2.222']", "Never seen")
    post_envelope(s, n.objects_url(cid), [c2, block, dga, seq, quiet])

    zeek = tmp_path / "conn.log"
    zeek.write_text(
        ZEEK_HEADER
        + "\n"
        + "\n".join(
            [
                conn_line(1767225601.0, "198.51.100.20"),
                conn_line(1767225602.0, "203.0.113.9", 53),
                conn_line(1767225603.0, "198.51.100.99"),
                "1767225604.0\tCbroken\tnot-an-address\t1\t198.51.100.1\t2\ttcp\t-\t-\t-\t-\tSF",
            ]
        )
        + "\n"
    )
    eve = tmp_path / "eve.json"
    eve.write_text(
        "\n".join(
            [
                eve_dns("2026-01-01T00:00:05.000000+0000", "k3j4h5g6f7d8.example.org"),
                eve_dns("2026-01-01T00:00:06.000000+0000", "exfil.example.net"),
                "{not json",
            ]
        )
        + "\n"
    )
    out = tmp_path / "alerts.jsonl"
    r = n.cli("detect", "-i", f"zeek:{zeek}", "-i", f"eve:{eve}", "--alerts", out, check=False)
    # Malformed lines make the run "completed with rejected input".
    assert r.returncode == 3, r.stderr
    alerts = alerts_of(out.read_text())
    names = sorted(a["indicator"]["name"] for a in alerts)
    assert names == ["Beacon then exfiltration", "C2 server", "DGA domains", "Hostile block"], alerts
    by_name = {a["indicator"]["name"]: a for a in alerts}
    c2_alert = by_name["C2 server"]
    assert c2_alert["indicator"]["id"] == c2["id"]
    [o] = c2_alert["observations"]
    assert o["file"] == str(zeek) and o["line"] == 9
    assert any(x.get("value") == "198.51.100.20" for x in o["objects"].values())
    # The sequence alert names both observations, from both inputs, in time order.
    seq_obs = by_name["Beacon then exfiltration"]["observations"]
    assert [x["file"] for x in seq_obs] == [str(zeek), str(eve)]
    # Malformed lines are reported with file and line, never fatal.
    lines = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    reports = [x for x in lines if "malformed" in x]
    assert {(x["file"], x["line"]) for x in reports} == {(str(zeek), 12), (str(eve), 3)}
    summary = summary_of(r.stderr)
    assert summary["events"] == 5
    assert summary["malformed"] == 2
    assert summary["hits"] == 4
    assert summary["indicators"]["loaded"] == 5

    # The hits are sightings in the node, read back with the TAXII client.
    sid = summary["sightings"]["collection"]
    objects = n.collection(sid).get_objects()["objects"]
    sightings = {o["sighting_of_ref"]: o for o in objects if o["type"] == "sighting"}
    assert set(sightings) == {c2["id"], block["id"], dga["id"], seq["id"]}
    identities = [o for o in objects if o["type"] == "identity"]
    assert len(identities) == 1
    node_identity = identities[0]["id"]
    # The same identity the node's signed descriptor carries.
    desc = json.loads(n.cli("descriptor", "export").stdout)
    assert desc["descriptor"]["document"]["identity"]["id"] == node_identity
    s_c2 = sightings[c2["id"]]
    assert s_c2["count"] == 1
    assert s_c2["first_seen"].startswith("2026-01-01T00:00:01")
    assert s_c2["where_sighted_refs"] == [node_identity]
    assert s_c2["created_by_ref"] == node_identity
    # Own telemetry: marked TLP 2.0 AMBER+STRICT unless configured otherwise.
    assert s_c2["object_marking_refs"] == ["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"]
    s_seq = sightings[seq["id"]]
    assert s_seq["first_seen"].startswith("2026-01-01T00:00:01")
    assert s_seq["last_seen"].startswith("2026-01-01T00:00:06")
    assert_stix_valid(objects)

    # A second run continues the same sightings: a new version, count 2.
    r = n.cli("detect", "-i", f"zeek:{zeek}", "--alerts", tmp_path / "again.jsonl", check=False)
    assert r.returncode == 3, r.stderr
    latest = n.collection(sid).get_object(s_c2["id"])["objects"][0]
    assert latest["count"] == 2
    assert latest["modified"] > s_c2["modified"]
    versions = n.collection(sid).object_versions(s_c2["id"])["versions"]
    assert len(versions) == 2
    # Other organizations are not granted the sightings collection.
    n.add_org("partner")
    n.add_user("alice", "partner", password="correct horse battery")
    r = n.session(user="alice", password="correct horse battery").get(n.objects_url(sid))
    assert r.status_code == 404


def test_live_updates_reach_a_running_detector(detect_node, tmp_path):
    n = detect_node
    cid = n.add_collection("live")
    s = n.session()
    first = ind("[ipv4-addr:value = '198.51.100.1']", "first")
    post_envelope(s, n.objects_url(cid), [first])
    log = tmp_path / "conn.log"
    log.write_text(ZEEK_HEADER + "\n" + conn_line(1767225601.0, "198.51.100.1") + "\n")
    out = tmp_path / "alerts.jsonl"
    p = subprocess.Popen(
        [anyam_bin(), "detect", "--data-dir", str(n.dir), "--follow", "-q",
         "-i", f"zeek:{log}", "--alerts", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def wait_alerts(count: int) -> list[dict]:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if out.exists():
                    got = alerts_of(out.read_text())
                    if len(got) >= count:
                        return got
                time.sleep(0.1)
            raise AssertionError(f"fewer than {count} alerts: {out.read_text() if out.exists() else ''}")

        assert [a["indicator"]["name"] for a in wait_alerts(1)] == ["first"]
        # A new indicator, and a revocation of the first, while it runs.
        second = ind("[ipv4-addr:value = '198.51.100.2']", "second")
        revoked = dict(first, modified="2024-06-01T00:00:00.000Z", revoked=True)
        post_envelope(s, n.objects_url(cid), [second, revoked])
        time.sleep(1.0)  # the detector reads the store's changes every 0.5 s
        with log.open("a") as f:
            f.write(conn_line(1767225700.0, "198.51.100.1") + "\n")
            f.write(conn_line(1767225701.0, "198.51.100.2") + "\n")
        got = wait_alerts(2)
        time.sleep(1.0)
        got = alerts_of(out.read_text())
        assert [a["indicator"]["name"] for a in got] == ["first", "second"], got
    finally:
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
    assert p.returncode == 0, err
    summary = summary_of(err)
    assert summary["events"] == 3
    assert summary["indicators"]["live_updates"] >= 2


def test_standalone_detection_from_stdin_with_dedup_and_normalisation(tmp_path):
    """No node: indicators from a bundle file, STIX observations on standard input."""
    md5_upper = "D41D8CD98F00B204E9800998ECF8427E"
    bundle = {
        "type": "bundle",
        "id": f"bundle--{uuid.uuid4()}",
        "objects": [
            ind(f"[file:hashes.MD5 = '{md5_upper}']", "Empty file"),
            ind("[domain-name:value = 'evil.example']", "Evil"),
            dict(ind("[domain-name:value = 'revoked.example']", "Revoked"), revoked=True),
            dict(ind("[domain-name:value = 'yara.example']", "Yara"), pattern_type="yara"),
            dict(ind("[domain-name:value = 'x'", "Broken"), id=f"indicator--{uuid.uuid4()}"),
        ],
    }
    (tmp_path / "ind.json").write_text(json.dumps(bundle))

    def observed(ts: str, objects: list[dict]) -> str:
        od = {
            "type": "observed-data",
            "spec_version": "2.1",
            "id": f"observed-data--{uuid.uuid4()}",
            "created": ts,
            "modified": ts,
            "first_observed": ts,
            "last_observed": ts,
            "number_observed": 1,
            "object_refs": [o["id"] for o in objects],
        }
        return json.dumps([od, *objects])

    def domain(v: str) -> dict:
        return {"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--{uuid.uuid4()}", "value": v}

    f = {"type": "file", "spec_version": "2.1", "id": f"file--{uuid.uuid4()}",
         "hashes": {"MD5": md5_upper.lower()}, "name": "empty"}
    lines = [
        observed("2026-01-01T00:00:00Z", [domain("evil.example")]),
        observed("2026-01-01T00:00:10Z", [domain("evil.example")]),
        observed("2026-01-01T00:02:00Z", [domain("EVIL.example.")]),
        observed("2026-01-01T00:03:00Z", [f]),
        observed("2026-01-01T00:04:00Z", [domain("revoked.example"), domain("yara.example")]),
    ]
    stdin = "\n".join(lines) + "\n"

    def detect(*extra):
        r = subprocess.run(
            [anyam_bin(), "detect", "--indicators", str(tmp_path / "ind.json"), "-i", "-", *extra],
            input=stdin, capture_output=True, text=True, timeout=60,
        )
        return r, alerts_of(r.stdout), summary_of(r.stderr)

    # Exact comparison: the upper-case hash and the upper-case domain do not match.
    r, alerts, summary = detect()
    assert r.returncode == 0, r.stderr
    assert [a["indicator"]["name"] for a in alerts] == ["Evil", "Evil"]
    assert summary["indicators"]["loaded"] == 2
    assert summary["indicators"]["not_matchable"] == 2  # revoked, and a yara pattern
    assert summary["indicators"]["refused"] == 1
    refused = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{\"refused\"")]
    assert len(refused) == 1 and "pattern" in refused[0]["refused"]
    # Folding on request; repeats within 60 s of event time written once.
    r, alerts, summary = detect("--normalize", "hashes,domains", "--dedup-secs", "60")
    assert r.returncode == 0, r.stderr
    assert [a["indicator"]["name"] for a in alerts] == ["Evil", "Evil", "Empty file"]
    assert [a["time"][:19] for a in alerts] == ["2026-01-01T00:00:00", "2026-01-01T00:02:00", "2026-01-01T00:03:00"]
    assert summary["hits"] == 4 and summary["suppressed_repeats"] == 1
    # A usage error is exit code 2, with the bad value named.
    r = subprocess.run([anyam_bin(), "detect", "-i", "pcap:x"], capture_output=True, text=True)
    assert r.returncode != 0 and "pcap" in r.stderr


RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
RECIPIENTS_EXT = "extension-definition--4e0cee20-b640-4553-9aad-1c16c0c90a79"


def test_detection_uses_only_what_the_host_organization_may_see(detect_node, tmp_path):
    """TLP:RED indicators meant for named people, and indicators carrying a
    marking nobody accepted, never reach alerts or sightings."""
    n = detect_node
    node_id = json.loads(n.cli("key", "show", "--json").stdout)["node_id"]
    n.add_org("cert-x")
    cid = n.add_collection("red-intel", grants={"host": "rw", "cert-x": "rw"})
    n.add_user("x1", "cert-x")
    plain = ind("[ipv4-addr:value = '198.51.100.71']", "Unmarked")
    red = ind("[ipv4-addr:value = '198.51.100.72']", "Red for x1", object_marking_refs=[RED],
              extensions={RECIPIENTS_EXT: {"extension_type": "property-extension",
                                           "recipients": [{"node_id": node_id, "user": "x1"}]}})
    unknown = ind("[ipv4-addr:value = '198.51.100.73']", "Unknown marking",
                  object_marking_refs=["marking-definition--5b3b3d4e-0c2b-4c4a-9a1e-6f0d8d7c6b5a"])
    post_envelope(n.session(), n.objects_url(cid), [plain, red, unknown])
    zeek = tmp_path / "conn.log"
    zeek.write_text(ZEEK_HEADER + "\n" + "\n".join(
        conn_line(1767225601.0 + i, f"198.51.100.{71 + i}") for i in range(3)) + "\n")
    out = tmp_path / "alerts.jsonl"
    r = n.cli("detect", "-i", f"zeek:{zeek}", "--alerts", out, check=False)
    assert r.returncode == 0, r.stderr
    hit = {a["indicator"]["id"] for a in alerts_of(out.read_text())}
    assert hit == {plain["id"]}
    assert summary_of(r.stderr)["indicators"]["withheld_by_policy"] == 2
