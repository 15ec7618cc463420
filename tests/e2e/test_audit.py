"""The audit log through the real binary: requests over HTTP become
release, receipt and denial entries; administration commands become admin
entries, also while the node serves; `anyam audit verify` passes on the
log the node wrote and names the entry an editor of the file changed,
deleted, reordered or cut; a partner's export verifies with the node's
public key and stops verifying once altered."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from support import audit_entries, audit_leaf, TLP_GREEN, anyam_bin, assert_taxii_error, get_json, indicator, post_envelope

EXIT_REJECTED = 3


def entries(node, at_least: int = 0, timeout: float = 10.0) -> list[dict]:
    """The audit entries in sequence order, read from the file the node
    writes (entries are committed just after the responses that record
    them, so wait until `at_least` are there)."""
    path = node.dir / "audit.db"
    deadline = time.monotonic() + timeout
    while True:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = audit_entries(con)
        finally:
            con.close()
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def versions_of(objects: list[dict]) -> list[dict]:
    return [{"id": o["id"], "version": o["modified"]} for o in objects]


def test_requests_over_http_become_entries(make_node):
    node = make_node().start()
    cid = node.add_collection("audited")
    node.add_org("outsider")
    outsider_pw = node.add_user("outsider-user", "outsider")
    admin = node.session()
    objs = [indicator(1), indicator(2, modified="2024-02-01T00:00:00.000Z")]
    n0 = len(entries(node))

    st = post_envelope(admin, node.objects_url(cid), objs)
    body, _ = get_json(admin, node.objects_url(cid))
    one, _ = get_json(admin, node.object_url(cid, objs[1]["id"]))
    r = admin.get(node.collection_url(cid) + "manifest/")
    assert r.status_code == 200
    # The outsider's organization holds no grant: the same 404 as for a
    # collection that does not exist...
    outsider = node.session("outsider-user", outsider_pw)
    hidden = outsider.get(node.objects_url(cid))
    absent = outsider.get(node.objects_url(str(uuid.uuid4())))
    assert_taxii_error(hidden, 404)
    assert hidden.json() == absent.json()
    # ...and a wrong password is a 401.
    assert_taxii_error(node.session("admin", "wrong-password").get(node.discovery_url), 401)

    got = entries(node, n0 + 6)[n0:]
    assert [e["kind"] for e in got] == ["receipt", "release", "release", "release", "denial", "denial"], got
    receipt, listing, single, manifest, hidden_entry, auth = got
    assert receipt["actor"] == "admin" and receipt["parties"] == ["host"]
    assert receipt["what"]["collection"] == cid
    assert receipt["what"]["objects"] == versions_of(objs)
    assert receipt["details"]["status_id"] == st["id"]
    assert receipt["details"]["rejected"] == 0
    assert listing["what"]["objects"] == versions_of(body["objects"])
    assert sorted(o["id"] for o in listing["what"]["objects"]) == sorted(o["id"] for o in objs)
    assert single["what"]["objects"] == [{"id": objs[1]["id"], "version": "2024-02-01T00:00:00.000Z"}]
    assert single["what"]["path"] == f"/anyam/collections/{cid}/objects/{objs[1]['id']}/"
    assert manifest["what"]["objects"] == versions_of(objs)
    assert listing["why"] == "read grant of organization host"
    # The audit entry says what the client was not told.
    # Not a party: a partner export would tell outsider that the collection exists.
    assert hidden_entry["actor"] == "outsider-user" and hidden_entry.get("parties", []) == []
    assert hidden_entry["details"]["caller_org"] == "outsider"
    assert hidden_entry["why"].startswith("hidden: organization outsider holds no grant on collection " + cid)
    assert hidden_entry["details"]["http_status"] == 404
    assert auth["actor"] == "unauthenticated" and auth["details"]["claimed_user"] == "admin"
    assert "wrong-password" not in json.dumps(got)

    # The administration that set this up is in the same log.
    admin_entries = [e for e in entries(node)[:n0] if e["kind"] == "admin"]
    commands = [e["details"]["command"] for e in admin_entries]
    assert commands == ["collection add", "grant set", "org add", "user add"], commands
    assert all(e["actor"].startswith("operator:") for e in admin_entries)

    # Heads: the node serves the latest to any authenticated caller and
    # signs one on demand for an administrator.
    signed = admin.post(f"{node.base}/audit/head")
    assert signed.status_code == 200, signed.text
    assert signed.json()["tree_size"] >= n0 + 6
    latest = outsider.get(f"{node.base}/audit/head")
    assert latest.status_code == 200 and latest.json() == signed.json()
    assert_taxii_error(outsider.post(f"{node.base}/audit/head"), 403)

    metrics = admin.get(f"{node.base}/metrics").text
    m = re.search(r"^anyam_audit_entries_total (\d+)", metrics, re.M)
    assert m and int(m.group(1)) >= 6, metrics

    r = node.cli("audit", "verify")
    assert json.loads(r.stdout)["entries"] >= n0 + 7


def test_administration_beside_the_running_server_shares_the_log(make_node, monkeypatch):
    """Two processes append to one file: the server under request load
    and administration commands, several at once. Nothing is lost, every
    entry is numbered once, and the log verifies."""
    monkeypatch.setenv("ANYAM_AUDIT_HEAD_INTERVAL_SECS", "1")
    node = make_node().start()
    cid = node.default_collection
    admin = node.session()
    n0 = len(entries(node))
    stop = threading.Event()
    served = []

    def load():
        s = node.session()
        while not stop.is_set():
            assert s.get(node.objects_url(cid)).status_code == 200
            served.append(1)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        procs = [
            subprocess.Popen(
                [anyam_bin(), "org", "add", f"parallel-{i}", "--data-dir", str(node.dir)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, out + err
    finally:
        stop.set()
        for t in threads:
            t.join()
    admin.close()

    assert node.stop() == 0
    got = entries(node)[n0:]
    orgs = sorted(e["details"]["org"] for e in got if e["kind"] == "admin")
    assert orgs == sorted(f"parallel-{i}" for i in range(8))
    assert sum(1 for e in got if e["kind"] == "release") == len(served)
    con = sqlite3.connect(node.dir / "audit.db")
    seqs = [s for (s,) in con.execute("SELECT seq FROM entries ORDER BY seq")]
    con.close()
    assert seqs == list(range(len(seqs)))
    report = json.loads(node.cli("audit", "verify").stdout)
    # The head signed at shutdown covers everything.
    assert report["unsigned_entries"] == 0
    assert report["entries"] == len(seqs)


# --- tampering -------------------------------------------------------------------------

TRIGGERS = [
    f"{table}_append_only_{op}" for table in ("entries", "nodes", "parties", "heads") for op in ("u", "d")
]


def tamper_copy(node, tmp_path: Path, name: str, edit) -> Path:
    """A copy of the node's audit log and public key, edited with `edit`
    after the refusal triggers are dropped: what someone with the file
    could do."""
    d = tmp_path / name
    (d / "keys").mkdir(parents=True)
    shutil.copy(node.dir / "keys" / "node.pub", d / "keys" / "node.pub")
    src = sqlite3.connect(node.dir / "audit.db")
    dst = sqlite3.connect(d / "audit.db")
    src.backup(dst)
    src.close()
    for t in TRIGGERS:
        dst.execute(f"DROP TRIGGER {t}")
    edit(dst)
    dst.commit()
    dst.close()
    return d


def verify_dir(d: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [anyam_bin(), "audit", "verify", "--data-dir", str(d)], capture_output=True, text=True, timeout=60
    )


def leaf(con, seq: int) -> str:
    return audit_leaf(con.execute("SELECT leaf FROM entries WHERE seq = ?", (seq,)).fetchone()[0]).decode()


def edit_entry(con):
    text = leaf(con, 2).replace('"actor":"', '"actor":"x')
    con.execute("UPDATE entries SET leaf = ? WHERE seq = 2", (text.encode(),))


def delete_entry(con):
    con.execute("DELETE FROM entries WHERE seq = 3")


def reorder_entries(con):
    rows = {s: (l, h) for s, l, h in con.execute("SELECT seq, leaf, leaf_hash FROM entries WHERE seq IN (1, 2)")}
    for seq, other in ((1, 2), (2, 1)):
        con.execute("UPDATE entries SET leaf = ?, leaf_hash = ? WHERE seq = ?", (*rows[other], seq))


def truncate_log(con):
    con.execute("DELETE FROM entries WHERE seq >= 4")


@pytest.fixture(scope="module")
def stopped_node(tmp_path_factory):
    """A node that served a few requests and stopped, signing a last head."""
    from support import Node

    node = Node(tmp_path_factory.mktemp("audit-tamper") / "data").start()
    try:
        s = node.session()
        cid = node.default_collection
        post_envelope(s, node.objects_url(cid), [indicator(i) for i in range(3)])
        for _ in range(4):
            get_json(s, node.objects_url(cid))
        assert_taxii_error(node.session("admin", "nope").get(node.discovery_url), 401)
        s.close()
        assert node.stop() == 0
        yield node
    finally:
        node.close()


def test_the_log_the_node_wrote_verifies(stopped_node):
    r = verify_dir(stopped_node.dir)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["entries"] >= 6 and report["unsigned_entries"] == 0


@pytest.mark.parametrize(
    "edit, seq",
    [(edit_entry, 2), (delete_entry, 3), (reorder_entries, 1), (truncate_log, 4)],
    ids=["edited", "deleted", "reordered", "truncated"],
)
def test_tampering_is_found_and_the_entry_named(stopped_node, tmp_path, edit, seq):
    d = tamper_copy(stopped_node, tmp_path, edit.__name__, edit)
    r = verify_dir(d)
    assert r.returncode == EXIT_REJECTED, r.stdout + r.stderr
    assert re.search(rf"\bentry {seq}\b", r.stderr), r.stderr


# --- partner exports ---------------------------------------------------------------------


def test_a_partner_export_verifies_and_an_altered_one_does_not(make_node, tmp_path):
    node = make_node().start()
    cid = node.add_collection("shared", grants={"host": "rw"})
    node.add_org("partner-x")
    node.grant("partner-x", cid, "r")
    pw = node.add_user("px", "partner-x")
    admin = node.session()
    post_envelope(admin, node.objects_url(cid), [indicator(7, object_marking_refs=[TLP_GREEN])])
    px = node.session("px", pw)
    body, _ = get_json(px, node.objects_url(cid))
    get_json(admin, node.objects_url(cid))  # concerns the host only
    n = len(entries(node))
    mine = [e for e in entries(node, n) if "partner-x" in e.get("parties", [])]
    # org add, grant set, user add (admin entries), and px's release.
    assert [e["kind"] for e in mine] == ["admin", "admin", "admin", "release"], mine
    assert mine[-1]["what"]["objects"] == versions_of(body["objects"])

    out = tmp_path / "partner-x.json"
    node.cli("audit", "export", "--partner", "partner-x", "--out", out)
    export = json.loads(out.read_text())
    assert [e["entry"] for e in export["entries"]] == mine
    key = node.dir / "keys" / "node.pub"

    def verify_export(path: Path) -> subprocess.CompletedProcess:
        # As the partner runs it: the file and the node's public key, no data directory.
        return subprocess.run(
            [anyam_bin(), "audit", "verify-export", str(path), "--key", str(key)],
            capture_output=True, text=True, timeout=60,
        )

    ok = verify_export(out)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["entries"] == 4

    altered = json.loads(out.read_text())
    altered["entries"][-1]["entry"]["what"]["objects"] = []
    bad = tmp_path / "altered.json"
    bad.write_text(json.dumps(altered))
    r = verify_export(bad)
    assert r.returncode == EXIT_REJECTED, r.stdout + r.stderr
    dropped = json.loads(out.read_text())
    del dropped["entries"][0]["inclusion_proof"][0]
    bad.write_text(json.dumps(dropped))
    assert verify_export(bad).returncode == EXIT_REJECTED
