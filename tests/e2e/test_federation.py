"""Federation between real nodes on 127.0.0.1: three `anyam serve`
processes with partner listeners (mutual TLS pinned to node keys), signed
agreements, pull sync and the live stream.

A shares with B under an agreement (up to TLP:RED, redistribution to C by
name); B shares with C. A shares nothing with C directly. Every read path
of every node is checked to hold exactly what it is entitled to: B holds
A's CLEAR, GREEN, AMBER, AMBER+STRICT (A's own) and the RED named to B's
user; C holds only A's CLEAR and GREEN, relayed by B with A's signature;
nothing flows back."""

import json
import re
import secrets
import socket
import sqlite3
import time
import uuid

import pytest

from support import (audit_entries, TLP_AMBER, TLP_AMBER_STRICT, TLP_CLEAR, TLP_GREEN, TLP_RED, indicator,
                     post_envelope, served_objects)

RECIPIENTS_EXT = "extension-definition--4e0cee20-b640-4553-9aad-1c16c0c90a79"
SYNC_TIMEOUT = 60


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ports bound to 0 and for outgoing connections."""
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port free now, outside the kernel's ephemeral range, so that no
    listener bound to port 0 (every node's TAXII listener) and no outgoing
    connection takes it before the node it is meant for starts; never the
    same port twice in one run, since a port handed out is bound only later."""
    lo, hi = _ephemeral_range()
    candidates = [p for p in range(10000, 65000) if not lo <= p <= hi] or list(range(10000, 65000))
    while True:
        port = candidates[secrets.randbelow(len(candidates))]
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def node_id(n) -> str:
    return json.loads(n.cli("key", "show", "--json").stdout)["node_id"]


def federating(make_node, name: str):
    """A node created, stopped, and configured with a partner listener."""
    n = make_node(name).start()
    n.stop()
    n.fed_port = free_port()
    cfg = n.dir / "anyam.toml"
    text = cfg.read_text()
    assert "[federation]" in text, text
    text = text.replace("[federation]\n", f'[federation]\nlisten = "127.0.0.1:{n.fed_port}"\n', 1)
    text = re.sub(r"(?m)^interval_secs = \d+$", "interval_secs = 1", text)
    cfg.write_text(text)
    n.node_id = node_id(n)
    return n


def introduce(nodes, tmp_path):
    """Every node imports every other node's descriptor."""
    for other in nodes:
        path = tmp_path / f"{other.dir.parent.name}.desc.json"
        other.cli("descriptor", "export", "--out", path)
        desc = json.loads(path.read_text())
        assert desc["descriptor"]["document"]["taxii_url"] == f"https://127.0.0.1:{other.fed_port}/taxii2/"
        for me in nodes:
            if me is not other:
                me.cli("partner", "import", path, "--expect-node-id", other.node_id)


def agree(x, y, tmp_path, title, *, collections, max_tlp="red", redistribution="none",
          recipients=(), sightings="no"):
    """A bilateral agreement drafted by x, signed by both, held by both."""
    draft = tmp_path / f"{title}.draft.json"
    args = ["agreement", "draft", "--party", y.node_id, "--title", title,
            "--max-tlp", max_tlp, "--pap", "red", "--redistribution", redistribution,
            "--sightings", sightings,
            "--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2099-01-01T00:00:00Z",
            "--out", draft]
    for c in collections:
        args += ["--collection", c]
    for r in recipients:
        args += ["--recipient", r]
    x.cli(*args)
    aid = json.loads(draft.read_text())["document"]["id"]
    x.cli("agreement", "sign", aid, "--out", tmp_path / f"{title}.x.json")
    y.cli("agreement", "countersign", tmp_path / f"{title}.x.json", "--out", tmp_path / f"{title}.xy.json")
    x.cli("agreement", "import", tmp_path / f"{title}.xy.json")
    for n in (x, y):
        ids = [a["id"] for a in json.loads(n.cli("agreement", "in-force").stdout)["agreements"]]
        assert aid in ids
    return aid


def marked(n: int, marking: str, **extra) -> dict:
    o = indicator(n, object_marking_refs=[marking], **extra)
    return o


def red_for(n: int, node: str, user: str) -> dict:
    return indicator(n, object_marking_refs=[TLP_RED], extensions={
        RECIPIENTS_EXT: {"extension_type": "property-extension",
                         "recipients": [{"node_id": node, "user": user}]}})


def all_versions(node, cid, user="admin", password=None) -> set[tuple[str, str]]:
    """(id, version) of every version `user` reads in a collection (404: none)."""
    s = node.session(user, password)
    try:
        r = s.get(node.objects_url(cid), params={"match[version]": "all"})
        if r.status_code == 404:
            return set()
        assert r.status_code == 200, r.text
        return {(o["id"], o.get("modified", o.get("created"))) for o in served_objects(r.json())}
    finally:
        s.close()


def manifest_ids(node, cid, user="admin", password=None) -> set[str]:
    s = node.session(user, password)
    try:
        r = s.get(node.collection_url(cid) + "manifest/", params={"match[version]": "all"})
        if r.status_code == 404:
            return set()
        assert r.status_code == 200, r.text
        return {o["id"] for o in r.json().get("objects", [])}
    finally:
        s.close()


def search_ids(node, word, user="admin", password=None) -> set[str]:
    s = node.session(user, password)
    try:
        r = s.get(node.root_url() + "search/", params={"q": word, "limit": 1000})
        assert r.status_code == 200, r.text
        return {h["object"]["id"] for h in r.json()["results"]}
    finally:
        s.close()


def export_ids(node, cid, tmp_path) -> set[str]:
    out = tmp_path / f"export-{node.dir.parent.name}-{cid}.json"
    r = node.cli("export", "--collection", cid, "-o", out, check=False)
    if r.returncode != 0:
        return set()
    return {o["id"] for o in json.loads(out.read_text()).get("objects", [])
            if o["type"] != "marking-definition"}


def wait_for(pred, what, timeout=SYNC_TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def sync_status(node) -> list[dict]:
    return json.loads(node.cli("sync", "status", "--json").stdout)


@pytest.fixture
def trio(make_node, tmp_path):
    a, b, c = (federating(make_node, n) for n in ("alpha", "bravo", "charlie"))
    introduce([a, b, c], tmp_path)
    shared = a.default_collection
    b_own = b.default_collection
    agree(a, b, tmp_path, "a-b", collections=[shared], redistribution="named",
          recipients=[c.node_id])
    # B shares A's collection (as B keeps it) and its own with C.
    agree(b, c, tmp_path, "b-c", collections=[shared, b_own], max_tlp="amber",
          redistribution="none")
    b.add_user("analyst", "host", "analyst-pw-1")
    b.add_user("other", "host", "other-pw-1")
    for n in (a, b, c):
        n.start()
    return a, b, c


def test_three_nodes_share_where_agreed_and_withhold_where_not(trio, tmp_path):
    a, b, c = trio
    cid = a.default_collection
    word = "fedprobe"
    objs = {
        "clear": marked(1, TLP_CLEAR, description=word),
        "green": marked(2, TLP_GREEN, description=word),
        "amber": marked(3, TLP_AMBER, description=word),
        "strict": marked(4, TLP_AMBER_STRICT, description=word),
        "red_b": red_for(5, b.node_id, "analyst"),
        "red_x": red_for(6, c.node_id, "someone"),
        "unmarked": indicator(7, description=word),
    }
    s = a.session()
    post_envelope(s, a.objects_url(cid), list(objs.values()))
    s.close()
    ident = {k: (o["id"], o["modified"]) for k, o in objs.items()}

    # AMBER+STRICT (and unmarked data, AMBER+STRICT by default) that A's
    # host organization originated goes to B's host organization.
    at_b = {ident[k] for k in ("clear", "green", "amber", "strict", "unmarked")}
    wait_for(lambda: all_versions(b, cid) >= at_b, "B to receive A's objects")
    # C receives A's CLEAR and GREEN, relayed by B, once B holds them.
    at_c = {ident[k] for k in ("clear", "green")}
    wait_for(lambda: all_versions(c, cid) >= at_c, "C to receive A's objects through B")
    # The RED object named to B's analyst arrives too (seen only by her).
    wait_for(lambda: ident["red_b"] in all_versions(b, cid, "analyst", "analyst-pw-1"),
             "B's analyst to receive the RED object")
    time.sleep(3)  # more rounds: nothing else may arrive

    # B: exactly what A's agreement allows, each user per TLP: its host
    # organization all but the RED, which only the named analyst sees; a
    # constituent organization of B's only CLEAR, GREEN and AMBER.
    assert all_versions(b, cid) == at_b
    assert all_versions(b, cid, "analyst", "analyst-pw-1") == at_b | {ident["red_b"]}
    assert all_versions(b, cid, "other", "other-pw-1") == at_b
    b.add_org("ministry")
    b.add_user("clerk", "ministry", "clerk-pw-1")
    b.grant("ministry", cid, "r")
    assert all_versions(b, cid, "clerk", "clerk-pw-1") == {ident[k] for k in ("clear", "green", "amber")}
    ids_b = {i for i, _ in at_b}
    assert manifest_ids(b, cid) == ids_b
    assert search_ids(b, word) == ids_b
    assert export_ids(b, cid, tmp_path) == ids_b

    # C: only A's CLEAR and GREEN, on every read path; nothing of A's
    # AMBER (B may not pass it on), RED or AMBER+STRICT.
    ids_c = {i for i, _ in at_c}
    assert all_versions(c, cid) == at_c
    assert manifest_ids(c, cid) == ids_c
    assert search_ids(c, word) == ids_c
    assert export_ids(c, cid, tmp_path) == ids_c
    for other in (b.default_collection, c.default_collection):
        assert not (all_versions(c, other) & set(ident.values()))

    # What C keeps of A's signed manifests, to relay with A's objects, is
    # their heads (the entries' count and Merkle root): no id of anything
    # else A sent B is there. The relayed entries carry their inclusion
    # proofs instead.
    con = sqlite3.connect(f"file:{c.dir / 'federation.db'}?mode=ro", uri=True)
    try:
        kept = [json.loads(body) for (body,) in con.execute("SELECT body FROM manifests")]
        proofs = con.execute("SELECT count(*) FROM receipts WHERE path IS NOT NULL").fetchone()[0]
    finally:
        con.close()
    assert kept and all(m["document"]["publisher"] == a.node_id for m in kept)
    assert all(set(m["document"]["entries"]) == {"count", "root"} for m in kept)
    text = json.dumps(kept)
    for k in ("amber", "strict", "unmarked", "red_b", "red_x", "clear", "green"):
        assert ident[k][0] not in text
    assert proofs >= len(at_c)

    # Nothing flowed back to A or sideways: A holds only its own.
    assert all_versions(a, cid) == set(ident.values())

    # Objects arrive exactly as A stored them.
    s = b.session()
    r = s.get(b.objects_url(cid), params={"match[id]": objs["green"]["id"]})
    assert served_objects(r.json()) == [objs["green"]]
    s.close()

    # Sync status: signatures verified, nothing rejected, streams up.
    st_b = {p["partner"]: p for p in sync_status(b)}
    assert st_b[a.node_id]["received"] >= 3 and st_b[a.node_id]["rejected_batches"] == 0
    assert st_b[a.node_id]["cursors"] and st_b[a.node_id]["last_success"]
    st_c = {p["partner"]: p for p in sync_status(c)}
    assert st_c[b.node_id]["received"] >= 2 and st_c[b.node_id]["rejected_batches"] == 0
    assert a.node_id not in st_c  # C has no agreement with A and never talks to it

    # The audit logs: A released to B (naming B), B received from A and
    # released to C, C received from B.
    def entries(n):
        con = sqlite3.connect(f"file:{n.dir / 'audit.db'}?mode=ro", uri=True)
        try:
            return audit_entries(con)
        finally:
            con.close()

    def released(log, party):
        return {o["id"] for e in log if e["kind"] == "release" and e.get("parties") == [party]
                for o in e.get("what", {}).get("objects", [])}

    log_a = entries(a)
    assert released(log_a, b.node_id) >= ids_b and not released(log_a, c.node_id)
    assert ident["red_b"][0] in released(log_a, b.node_id)
    assert ident["red_x"][0] not in released(log_a, b.node_id)
    log_b = entries(b)
    assert released(log_b, c.node_id) == ids_c

    # A backup of B carries the provenance of what it received.
    b.cli("backup", tmp_path / "b-backup.db")
    con = sqlite3.connect(tmp_path / "b-backup.federation.db")
    try:
        held = {r[0] for r in con.execute("SELECT object_id FROM receipts")}
    finally:
        con.close()
    assert held >= ids_b
    assert any(e["kind"] == "receipt" and e.get("parties") == [a.node_id] for e in log_b)


def test_live_stream_delivers_new_objects_and_pull_resumes_after_restart(trio):
    a, b, c = trio
    cid = a.default_collection
    wait_for(lambda: any(p["stream_up"] for p in sync_status(b)), "B's live stream from A")

    s = a.session()
    first = marked(20, TLP_GREEN)
    t0 = time.monotonic()
    post_envelope(s, a.objects_url(cid), [first])
    wait_for(lambda: (first["id"], first["modified"]) in all_versions(b, cid), "live delivery")
    assert time.monotonic() - t0 < 10

    # B is killed; A keeps publishing; B comes back and catches up from
    # its cursor, with no loss and no duplicate.
    b.kill()
    later = [marked(30 + i, TLP_GREEN) for i in range(50)]
    post_envelope(s, a.objects_url(cid), later)
    s.close()
    b.start()
    want = {(o["id"], o["modified"]) for o in [first, *later]}
    wait_for(lambda: all_versions(b, cid) >= want, "B to catch up after restart")
    sb = b.session()
    r = sb.get(b.objects_url(cid), params={"match[version]": "all", "limit": 1000})
    ids = [o["id"] for o in served_objects(r.json())]
    assert len(ids) == len(set(ids))
    sb.close()
    # C converges on the same GREEN set through B.
    wait_for(lambda: all_versions(c, cid) >= want, "C to converge")

    # A revokes one (a new version with revoked: true): the revocation
    # reaches B and, through B, C; the old version stays as history.
    revoked = dict(first, modified="2024-06-01T00:00:00.000Z", revoked=True)
    s = a.session()
    post_envelope(s, a.objects_url(cid), [revoked])
    s.close()
    for n in (b, c):
        wait_for(lambda n=n: (revoked["id"], revoked["modified"]) in all_versions(n, cid),
                 "the revocation to propagate")
        sn = n.session()
        r = sn.get(n.objects_url(cid), params={"match[id]": revoked["id"]})
        assert served_objects(r.json()) == [revoked]
        sn.close()


def agreements_at(n) -> dict:
    return {(a["id"], a["version"]): a for a in json.loads(n.cli("agreement", "list", "--json").stdout)}


def in_force_ids(n) -> set[str]:
    return {a["id"] for a in json.loads(n.cli("agreement", "in-force").stdout)["agreements"]}


@pytest.mark.parametrize("retention", ["delete", "keep"])
def test_agreement_travels_between_nodes_and_termination_stops_the_flow(make_node, tmp_path, retention):
    a, b = federating(make_node, "alpha"), federating(make_node, "bravo")
    introduce([a, b], tmp_path)
    for n in (a, b):
        n.start()
    cid = a.default_collection
    # A drafts and signs; the signed proposal reaches B over federation.
    draft = tmp_path / "draft.json"
    a.cli("agreement", "draft", "--party", b.node_id, "--title", "over-the-wire",
          "--collection", cid, "--max-tlp", "amber", "--notice-days", "0", "--retention", retention,
          "--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2099-01-01T00:00:00Z",
          "--out", draft)
    aid = json.loads(draft.read_text())["document"]["id"]
    a.cli("agreement", "sign", aid, "--out", tmp_path / "signed.json")
    got = wait_for(lambda: agreements_at(b).get((aid, 1)), "B to receive the proposal")
    assert got["status"]["in_force"] is False
    assert aid not in in_force_ids(b)
    # B countersigns the stored proposal; the countersignature reaches A.
    b.cli("agreement", "countersign", aid, "--out", tmp_path / "both.json")
    assert aid in in_force_ids(b)
    wait_for(lambda: aid in in_force_ids(a), "A to receive the countersignature")

    s = a.session()
    first = marked(40, TLP_GREEN)
    post_envelope(s, a.objects_url(cid), [first])
    wait_for(lambda: (first["id"], first["modified"]) in all_versions(b, cid), "data under the agreement")

    # A gives notice (no notice period): B learns it, and nothing new flows.
    a.cli("agreement", "terminate", aid, "--reason", "end of exercise")
    assert aid not in in_force_ids(a)
    wait_for(lambda: aid not in in_force_ids(b), "B to receive the termination")
    after = marked(41, TLP_GREEN)
    post_envelope(s, a.objects_url(cid), [after])
    s.close()
    time.sleep(4)
    assert (after["id"], after["modified"]) not in all_versions(b, cid)
    # Retention: what B received under the agreement is deleted, or kept,
    # as its terms say; a deletion is audited.
    held = (first["id"], first["modified"])
    if retention == "delete":
        wait_for(lambda: held not in all_versions(b, cid), "retention to delete received data")
    else:
        assert held in all_versions(b, cid)
    con = sqlite3.connect(f"file:{b.dir / 'audit.db'}?mode=ro", uri=True)
    try:
        kept = audit_entries(con)
    finally:
        con.close()
    retained = [o["id"] for e in kept if e["kind"] == "retention" for o in e["what"]["objects"]]
    assert retained == ([first["id"]] if retention == "delete" else [])

    # Both audit logs record the documents that travelled.
    def agreement_events(n):
        con = sqlite3.connect(f"file:{n.dir / 'audit.db'}?mode=ro", uri=True)
        try:
            rows = audit_entries(con)
        finally:
            con.close()
        return [e for e in rows if e["kind"] == "agreement" and e.get("details", {}).get("from")]
    assert {e["details"]["notice"] for e in agreement_events(b)} == {"agreement", "termination"}
    assert [e["details"]["notice"] for e in agreement_events(a)] == ["agreement"]


def test_deletion_reaches_every_node_as_a_signed_tombstone(trio):
    a, b, c = trio
    cid = a.default_collection
    keep, gone = marked(50, TLP_GREEN), marked(51, TLP_GREEN)
    s = a.session()
    post_envelope(s, a.objects_url(cid), [keep, gone])
    both = {(o["id"], o["modified"]) for o in (keep, gone)}
    for n in (b, c):
        wait_for(lambda n=n: all_versions(n, cid) >= both, "the objects to reach every node")
    # C is offline when A deletes; B applies the tombstone at once, C when
    # it comes back, before anything else.
    c.stop()
    r = s.delete(a.object_url(cid, gone["id"]))
    assert r.status_code == 200, r.text
    s.close()
    wait_for(lambda: (gone["id"], gone["modified"]) not in all_versions(b, cid), "B to delete")
    assert (keep["id"], keep["modified"]) in all_versions(b, cid)
    c.start()
    wait_for(lambda: (gone["id"], gone["modified"]) not in all_versions(c, cid), "C to delete")
    assert (keep["id"], keep["modified"]) in all_versions(c, cid)

    # Deleting a received object on B (once its operator gave the host
    # organization write access there) deletes it on B only.
    b.grant("host", cid, "rw")
    sb = b.session()
    assert sb.delete(b.object_url(cid, keep["id"])).status_code == 200
    sb.close()
    time.sleep(3)
    assert (keep["id"], keep["modified"]) in all_versions(a, cid)
    assert (keep["id"], keep["modified"]) in all_versions(c, cid)

    def deletions(n):
        con = sqlite3.connect(f"file:{n.dir / 'audit.db'}?mode=ro", uri=True)
        try:
            rows = audit_entries(con)
        finally:
            con.close()
        return [e for e in rows if e["kind"] == "deletion" and "tombstone" in e["why"]]
    assert [e["parties"] for e in deletions(b)] == [[a.node_id]]
    assert [e["parties"] for e in deletions(c)] == [[b.node_id]]


@pytest.mark.parametrize("consent", ["yes", "anonymized", "no"])
def test_sightings_go_back_to_the_originator_where_agreed(make_node, tmp_path, consent):
    a, b = federating(make_node, "alpha"), federating(make_node, "bravo")
    introduce([a, b], tmp_path)
    cid = a.default_collection
    # Sightings are AMBER+STRICT (detect's default marking): the agreement
    # must allow that level.
    agree(a, b, tmp_path, "a-b", collections=[cid], max_tlp="amber+strict", sightings=consent)
    for n in (a, b):
        n.start()
    ind = marked(60, TLP_GREEN, pattern="[ipv4-addr:value = '198.51.100.77']")
    s = a.session()
    post_envelope(s, a.objects_url(cid), [ind])
    wait_for(lambda: (ind["id"], ind["modified"]) in all_versions(b, cid), "the indicator at B")

    # B's sensors see the address: `anyam detect` writes a sighting at B.
    addr = {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}",
            "value": "198.51.100.77"}
    od = {"type": "observed-data", "spec_version": "2.1", "id": f"observed-data--{uuid.uuid4()}",
          "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
          "first_observed": "2026-01-01T00:00:00Z", "last_observed": "2026-01-01T00:00:00Z",
          "number_observed": 1, "object_refs": [addr["id"]]}
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps([od, addr]) + "\n")
    r = b.cli("detect", "-i", f"stix:{events}", "--alerts", tmp_path / "alerts.jsonl")
    assert ind["id"] in (tmp_path / "alerts.jsonl").read_text(), r.stderr

    # An analyst at B posts a sighting of the same indicator over TAXII,
    # into B's own collection: it goes back like detect's.
    posted = {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}",
              "created": "2026-02-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.000Z",
              "sighting_of_ref": ind["id"], "count": 3,
              "where_sighted_refs": [f"identity--{uuid.uuid4()}"],
              "created_by_ref": f"identity--{uuid.uuid4()}",
              "object_marking_refs": [TLP_AMBER]}
    sb = b.session()
    post_envelope(sb, b.objects_url(b.default_collection), [posted])
    sb.close()

    def sightings_at_a():
        r = s.get(a.objects_url(cid), params={"match[type]": "sighting", "match[version]": "all"})
        return served_objects(r.json()) if r.status_code == 200 else []

    if consent == "no":
        time.sleep(4)
        assert sightings_at_a() == []
        s.close()
        return
    def both():
        got = sightings_at_a()
        return got if len({o["id"] for o in got}) >= 2 else None
    # Detect's sighting (its versions) and the posted one.
    got = wait_for(both, "both sightings back at A")
    s.close()
    assert len({o["id"] for o in got}) == 2
    assert {o["sighting_of_ref"] for o in got} == {ind["id"]}
    assert [o["count"] for o in got].count(3) == 1
    for o in got:
        assert o["count"] >= 1
        if consent == "anonymized":
            assert not {"where_sighted_refs", "created_by_ref", "observed_data_refs"} & set(o)
        else:
            assert o["where_sighted_refs"] and o["created_by_ref"].startswith("identity--")


def test_sharing_group_formed_over_the_wire_and_a_removed_party_cut_off(make_node, tmp_path):
    a, b, c = (federating(make_node, n) for n in ("alpha", "bravo", "charlie"))
    introduce([a, b, c], tmp_path)
    for n in (a, b, c):
        n.start()
    cid = a.default_collection
    draft = tmp_path / "group.json"
    a.cli("agreement", "draft", "--party", b.node_id, "--party", c.node_id, "--title", "group",
          "--collection", cid, "--max-tlp", "amber",
          "--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2099-01-01T00:00:00Z",
          "--out", draft)
    gid = json.loads(draft.read_text())["document"]["id"]
    a.cli("agreement", "sign", gid)
    for n in (b, c):
        wait_for(lambda n=n: agreements_at(n).get((gid, 1)), "the proposal at every party")
        n.cli("agreement", "countersign", gid)
    for n in (a, b, c):
        wait_for(lambda n=n: gid in in_force_ids(n), "the group in force everywhere")

    s = a.session()
    first = marked(70, TLP_GREEN)
    post_envelope(s, a.objects_url(cid), [first])
    for n in (b, c):
        wait_for(lambda n=n: (first["id"], first["modified"]) in all_versions(n, cid), "data to the group")

    # C is offline when A removes it. B enforces the removal on receipt; C
    # learns it when it reconnects, before anything else flows.
    c.stop()
    a.cli("agreement", "remove", gid, "--party", c.node_id, "--reason", "left the coalition")
    view = json.loads(a.cli("agreement", "in-force").stdout)["agreements"]
    assert [sorted(p["node_id"] for p in g["parties"]) for g in view] == [sorted([a.node_id, b.node_id])]
    wait_for(lambda: [g for g in json.loads(b.cli("agreement", "in-force").stdout)["agreements"]
                      if c.node_id not in {p["node_id"] for p in g["parties"]}], "B to enforce the removal")
    later = marked(71, TLP_GREEN)
    post_envelope(s, a.objects_url(cid), [later])
    s.close()
    wait_for(lambda: (later["id"], later["modified"]) in all_versions(b, cid), "data still to B")
    c.start()
    wait_for(lambda: gid not in in_force_ids(c), "C to learn it was removed")
    time.sleep(4)
    assert (later["id"], later["modified"]) not in all_versions(c, cid)


def test_amendment_travels_and_a_widened_scope_is_backfilled(make_node, tmp_path):
    a, b = federating(make_node, "alpha"), federating(make_node, "bravo")
    introduce([a, b], tmp_path)
    cid = a.default_collection
    aid = agree(a, b, tmp_path, "narrow", collections=[cid], max_tlp="green")
    for n in (a, b):
        n.start()
    green, amber = marked(80, TLP_GREEN), marked(81, TLP_AMBER)
    s = a.session()
    post_envelope(s, a.objects_url(cid), [green, amber])
    s.close()
    wait_for(lambda: (green["id"], green["modified"]) in all_versions(b, cid), "GREEN under the narrow scope")
    time.sleep(2)
    assert (amber["id"], amber["modified"]) not in all_versions(b, cid)

    # A amends the agreement to AMBER and signs; B countersigns what
    # arrived; once version 2 is in force on both, the AMBER object, added
    # long before, is backfilled.
    a.cli("agreement", "amend", aid, "--max-tlp", "amber", "--out", tmp_path / "v2.json")
    a.cli("agreement", "sign", aid)
    wait_for(lambda: agreements_at(b).get((aid, 2)), "the amendment at B")
    b.cli("agreement", "countersign", aid)
    wait_for(lambda: any(g["version"] == 2 for g in json.loads(a.cli("agreement", "in-force").stdout)["agreements"]),
             "version 2 in force at A")
    wait_for(lambda: (amber["id"], amber["modified"]) in all_versions(b, cid), "the backfill of AMBER")
    assert all_versions(b, cid) == {(o["id"], o["modified"]) for o in (green, amber)}


def test_a_received_object_without_recorded_provenance_is_never_relayed(trio):
    a, b, c = trio
    cid = a.default_collection
    c.stop()
    lost, kept = marked(90, TLP_GREEN), marked(91, TLP_GREEN)
    s = a.session()
    post_envelope(s, a.objects_url(cid), [lost, kept])
    s.close()
    both = {(o["id"], o["modified"]) for o in (lost, kept)}
    wait_for(lambda: all_versions(b, cid) >= both, "B to receive both")
    # B loses the provenance of one object (a federation database restored
    # from an old copy, say): B may not present it as its own, nor relay it
    # with terms it cannot prove.
    b.stop()
    con = sqlite3.connect(b.dir / "federation.db")
    with con:
        # Its receipts are made to name no object (deleting them would
        # touch their full-text index, whose options this Python's SQLite
        # may be too old to read).
        con.execute("UPDATE receipts SET object_id = 'lost:' || object_id WHERE object_id = ?", (lost["id"],))
        assert con.total_changes > 0
    con.close()
    b.start()
    c.start()
    wait_for(lambda: (kept["id"], kept["modified"]) in all_versions(c, cid), "C to receive the other")
    time.sleep(3)
    assert (lost["id"], lost["modified"]) not in all_versions(c, cid)


def test_a_partner_cannot_write_into_a_collection_of_the_receivers_own(make_node, tmp_path):
    a, b = federating(make_node, "alpha"), federating(make_node, "bravo")
    introduce([a, b], tmp_path)
    # A makes a collection with the id of B's own default collection and
    # shares it with B.
    target = b.default_collection
    a.cli("collection", "add", "lookalike", "--id", target)
    a.grant("host", target, "rw")
    agree(a, b, tmp_path, "a-b", collections=[target], max_tlp="amber")
    for n in (a, b):
        n.start()
    injected = marked(95, TLP_GREEN)
    s = a.session()
    post_envelope(s, a.objects_url(target), [injected])
    s.close()
    st = wait_for(lambda: [p for p in sync_status(b) if p["rejected_batches"] >= 1], "B to refuse the page")
    assert "own" in st[0]["last_error"], st
    assert (injected["id"], injected["modified"]) not in all_versions(b, target)


def test_a_key_rotated_while_the_node_serves_is_used_from_the_next_connection(make_node, tmp_path):
    a, b = (federating(make_node, n) for n in ("alpha", "bravo"))
    introduce([a, b], tmp_path)
    cid = a.default_collection
    agree(a, b, tmp_path, "a-b", collections=[cid], redistribution="none")
    a.start()
    b.start()
    s = a.session()
    first = marked(1, TLP_GREEN)
    post_envelope(s, a.objects_url(cid), [first])
    wait_for(lambda: (first["id"], first["modified"]) in all_versions(b, cid),
             "B to receive A's object before the rotation")
    cert_before = (a.dir / "tls" / "partner-cert.pem").read_text()

    # A's key rotates while A serves; B learns of it from A's descriptor and
    # from then on accepts only the new key. B restarts, so that every
    # connection between the two is opened after the rotation.
    old = json.loads(a.cli("key", "show", "--json").stdout)["active_key_id"]
    a.cli("key", "rotate")
    new = json.loads(a.cli("key", "show", "--json").stdout)["active_key_id"]
    assert new != old
    path = tmp_path / "alpha.rotated.json"
    a.cli("descriptor", "export", "--out", path)
    b.cli("partner", "import", path, "--expect-node-id", a.node_id)
    b.stop()
    b.start()

    # A presents its new key in TLS and signs its pages with it: objects
    # keep flowing without A restarting.
    second = marked(2, TLP_GREEN)
    post_envelope(s, a.objects_url(cid), [second])
    s.close()
    wait_for(lambda: (second["id"], second["modified"]) in all_versions(b, cid),
             "B to receive A's object after the rotation")
    assert (a.dir / "tls" / "partner-cert.pem").read_text() != cert_before
    st = {p["partner"]: p for p in sync_status(b)}
    assert st[a.node_id]["rejected_batches"] == 0
