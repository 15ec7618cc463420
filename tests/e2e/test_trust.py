"""Binding frameworks through the real binary: the recovery key made at
first start, descriptors exchanged as files and verified on import, a
bilateral agreement drafted, signed and countersigned, amended, verified
and terminated, a three-party sharing group, and compromise recovery with
the offline recovery key — documents signed by the revoked key are
rejected once partners hold the revocation."""

import json
import sqlite3
import re
import shutil
import stat

import pytest

from support import audit_entries

REJECTED = 3


def started(make_node, name):
    n = make_node(name).start()
    n.stop()
    return n


def node_id(n) -> str:
    return json.loads(n.cli("key", "show", "--json").stdout)["node_id"]


def export(n, path, url=None):
    args = ["descriptor", "export", "--out", path]
    if url:
        args += ["--taxii-url", url]
    n.cli(*args)
    return path


def status(n, target) -> dict:
    r = n.cli("agreement", "verify", target, "--json", check=False)
    assert r.returncode in (0, REJECTED), r.stderr
    v = json.loads(r.stdout)
    assert v["in_force"] == (r.returncode == 0)
    return v


@pytest.fixture
def pair(make_node, tmp_path):
    """Two nodes that imported each other's descriptors, recovery keys
    moved offline."""
    a, b = started(make_node, "alpha"), started(make_node, "bravo")
    offline = {}
    for n in (a, b):
        key = n.dir / "keys" / "recovery.key"
        offline[n] = tmp_path / f"{n.dir.parent.name}.recovery.key"
        shutil.move(key, offline[n])
    for me, other in ((a, b), (b, a)):
        path = export(other, tmp_path / f"{other.dir.parent.name}.desc.json",
                      f"https://{other.dir.parent.name}.example/taxii2/")
        me.cli("partner", "import", path, "--expect-node-id", node_id(other))
    return a, b, offline


def test_first_start_writes_recovery_key_once(make_node):
    n = make_node("first").start()
    out = "\n".join(n.first_start_output)
    m = re.search(r"Recovery key written to (\S+)", out)
    assert m, out
    key = n.dir / "keys" / "recovery.key"
    assert key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    nid = re.search(r"node id:\s+([0-9a-f]{64})", out).group(1)
    n.stop()
    key.unlink()  # moved offline
    n.start()
    assert not any("Recovery key" in line for line in n.output)
    shown = json.loads(n.cli("key", "show", "--json").stdout)
    assert shown["node_id"] == nid
    assert shown["recovery_key_file_present"] is False
    assert len(shown["keys"]) == 1 and shown["keys"][0]["status"] == "active"


def test_descriptor_import_verifies(pair, tmp_path, make_node):
    a, b, _ = pair
    listed = json.loads(a.cli("partner", "list", "--json").stdout)
    assert [p["node_id"] for p in listed] == [node_id(b)]
    assert listed[0]["taxii_url"] == "https://bravo.example/taxii2/"
    c = started(make_node, "charlie")
    good = json.loads(export(c, tmp_path / "c.json").read_text())
    cases = {
        "renamed": lambda d: d["descriptor"]["document"].__setitem__("node_name", "mallory"),
        "unsigned": lambda d: d["descriptor"].__setitem__("signatures", []),
        "no key history": lambda d: d.__setitem__("key_statements", []),
        "not json": None,
    }
    for name, tamper in cases.items():
        path = tmp_path / f"bad-{name.replace(' ', '-')}.json"
        if tamper is None:
            path.write_text("{ nope")
        else:
            d = json.loads(json.dumps(good))
            tamper(d)
            path.write_text(json.dumps(d))
        r = a.cli("partner", "import", path, check=False)
        assert r.returncode == REJECTED, (name, r.stdout, r.stderr)
        assert "rejected" in r.stderr
    # A pinned node id that does not match is refused too.
    path = tmp_path / "c.json"
    r = a.cli("partner", "import", path, "--expect-node-id", node_id(b), check=False)
    assert r.returncode == REJECTED
    assert len(json.loads(a.cli("partner", "list", "--json").stdout)) == 1


def test_agreement_lifecycle(pair, tmp_path):
    a, b, _ = pair
    draft = tmp_path / "draft.json"
    a.cli("agreement", "draft", "--party", node_id(b), "--title", "Ransomware",
          "--collection", "default", "--object-type", "indicator",
          "--max-tlp", "amber", "--pap", "green", "--redistribution", "parties",
          "--sightings", "anonymized", "--retention", "keep:90", "--notice-days", "14",
          "--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2099-01-01T00:00:00Z",
          "--out", draft)
    aid = json.loads(draft.read_text())["document"]["id"]
    assert status(a, aid)["reason"] == "missing_signature"

    signed_a = tmp_path / "a.json"
    a.cli("agreement", "sign", aid, "--out", signed_a)
    assert status(a, aid)["reason"] == "missing_signature"

    # Tampered in transit: B refuses it.
    bad = json.loads(signed_a.read_text())
    bad["document"]["scope"]["max_tlp"] = "red"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = b.cli("agreement", "countersign", tmp_path / "bad.json", check=False)
    assert r.returncode == REJECTED, r.stderr

    both = tmp_path / "ab.json"
    b.cli("agreement", "countersign", signed_a, "--out", both)
    a.cli("agreement", "import", both)
    for n in (a, b):
        assert status(n, aid)["in_force"] is True
        view = json.loads(n.cli("agreement", "in-force").stdout)
        [ag] = view["agreements"]
        assert ag["id"] == aid and ag["scope"]["max_tlp"] == "amber"
        assert ag["sightings"] == {"send_to_originator": True, "anonymized": True}
        assert ag["retention_after_termination"] == {"action": "keep", "days": 90}
        assert not ag["sharing_group"]
    shown = a.cli("agreement", "show", aid).stdout
    assert "in force" in shown and "NOT SIGNED" not in shown

    # Amend: version 2 replaces version 1 once both signed it.
    a.cli("agreement", "amend", aid, "--max-tlp", "green", "--out", tmp_path / "v2.json")
    assert status(a, aid)["reason"] == "missing_signature"  # latest = v2, half signed
    v1 = json.loads(a.cli("agreement", "verify", aid, "--version", "1", "--json").stdout)
    assert v1["in_force"] is True
    a.cli("agreement", "sign", aid, "--out", tmp_path / "v2a.json")
    b.cli("agreement", "countersign", tmp_path / "v2a.json", "--out", tmp_path / "v2ab.json")
    a.cli("agreement", "import", tmp_path / "v2ab.json")
    for n in (a, b):
        r = n.cli("agreement", "verify", aid, "--version", "1", "--json", check=False)
        assert r.returncode == REJECTED
        assert json.loads(r.stdout)["reason"] == "superseded"
        assert status(n, aid)["in_force"] is True
        versions = json.loads(n.cli("agreement", "list", "--json").stdout)
        assert [v["version"] for v in versions] == [1, 2]

    # Terminate: in force during the notice period, with its end reported.
    b.cli("agreement", "terminate", aid, "--reason", "policy change", "--out", tmp_path / "t.json")
    a.cli("agreement", "import", tmp_path / "t.json")
    for n in (a, b):
        s = status(n, aid)
        assert s["in_force"] is True and s["terminating_at"]
    # A notice signed by someone else is refused.
    forged = json.loads((tmp_path / "t.json").read_text())
    forged["document"]["reason"] = "forged"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert a.cli("agreement", "import", tmp_path / "forged.json", check=False).returncode == REJECTED

    # Every agreement event is in A's audit log, naming B as the party, and
    # B's export of A's entries holds exactly those.
    con = sqlite3.connect(f"file:{a.dir / 'audit.db'}?mode=ro", uri=True)
    try:
        logged = audit_entries(con)
    finally:
        con.close()
    commands = [e["details"]["command"] for e in logged if e["kind"] == "agreement"]
    assert commands == ["agreement draft", "agreement sign", "agreement import", "agreement amend",
                        "agreement sign", "agreement import", "agreement import"], commands
    assert all(e["parties"] == [node_id(b)] for e in logged if e["kind"] == "agreement")
    assert a.cli("audit", "verify").returncode == 0


def test_sharing_group_and_non_party(make_node, tmp_path):
    nodes = [started(make_node, n) for n in ("alpha", "bravo", "charlie", "delta")]
    descs = {n: export(n, tmp_path / f"{n.dir.parent.name}.json") for n in nodes}
    for me in nodes:
        for other in nodes:
            if other is not me:
                me.cli("partner", "import", descs[other])
    a, b, c, d = nodes
    a.cli("agreement", "draft", "--party", node_id(b), "--party", node_id(c), "--title", "Group",
          "--object-type", "indicator",
          "--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2099-01-01T00:00:00Z",
          "--out", tmp_path / "g.json")
    gid = json.loads((tmp_path / "g.json").read_text())["document"]["id"]
    a.cli("agreement", "sign", gid, "--out", tmp_path / "g1.json")
    b.cli("agreement", "countersign", tmp_path / "g1.json", "--out", tmp_path / "g2.json")
    c.cli("agreement", "countersign", tmp_path / "g2.json", "--out", tmp_path / "g3.json")
    for n in (a, b):
        n.cli("agreement", "import", tmp_path / "g3.json")
    for n in (a, b, c):
        [ag] = json.loads(n.cli("agreement", "in-force").stdout)["agreements"]
        assert ag["sharing_group"] and len(ag["parties"]) == 3
    # A node outside the group does not take the member list in.
    r = d.cli("agreement", "import", tmp_path / "g3.json", check=False)
    assert r.returncode == REJECTED
    assert json.loads(d.cli("agreement", "list", "--json").stdout) == []


def test_compromise_recovery_end_to_end(pair, tmp_path):
    a, b, offline = pair
    a.cli("agreement", "draft", "--party", node_id(b), "--title", "Before",
          "--object-type", "indicator",
          "--valid-from", "2020-01-01T00:00:00Z", "--valid-until", "2099-01-01T00:00:00Z",
          "--out", tmp_path / "d.json")
    aid = json.loads((tmp_path / "d.json").read_text())["document"]["id"]
    a.cli("agreement", "sign", aid, "--out", tmp_path / "a.json")
    b.cli("agreement", "countersign", tmp_path / "a.json", "--out", tmp_path / "ab.json")
    assert status(b, aid)["in_force"] is True
    stolen_desc = export(a, tmp_path / "stolen-era.json")
    old_key = json.loads(a.cli("key", "show", "--json").stdout)["active_key_id"]

    # The wrong recovery key is refused; the right one revokes the node key.
    r = a.cli("key", "revoke", "--recovery-key", offline[b], check=False)
    assert r.returncode != 0
    a.cli("key", "revoke", "--recovery-key", offline[a], "--reason", "laptop stolen")
    shown = json.loads(a.cli("key", "show", "--json").stdout)
    assert shown["active_key_id"] != old_key
    assert {k["key_id"]: k["status"] for k in shown["keys"]}[old_key] == "revoked"

    # B still trusts the old key until it holds the revocation.
    assert status(b, aid)["in_force"] is True
    b.cli("partner", "import", export(a, tmp_path / "recovered.json"))
    s = status(b, aid)
    assert s["in_force"] is False and s["reason"] == "key_rejected", s
    assert s["key_id"] == old_key
    # A descriptor signed with the revoked key is rejected now.
    assert b.cli("partner", "import", stolen_desc, check=False).returncode == REJECTED

    # Re-signed with the new key, the agreement binds again.
    a.cli("agreement", "sign", aid, "--out", tmp_path / "resigned.json")
    b.cli("agreement", "import", tmp_path / "resigned.json")
    assert status(b, aid)["in_force"] is True

    # Routine rotation afterwards keeps it in force.
    a.cli("key", "rotate")
    b.cli("partner", "import", export(a, tmp_path / "rotated.json"))
    assert status(b, aid)["in_force"] is True
    # The node still serves after its key changed.
    a.start()
    assert a.session().get(a.discovery_url).status_code == 200


def test_interrupted_key_changes_complete_or_roll_back(make_node):
    n = started(make_node, "crashy")
    keys = n.dir / "keys"
    before = n.cli("key", "show", "--json").stdout
    # A new key written but never recorded (crash before the statement):
    # discarded, the node keeps its key.
    shutil.copy(keys / "recovery.key", keys / "node.key.next")
    after = n.cli("key", "show", "--json").stdout
    assert after == before
    assert not (keys / "node.key.next").exists()
    # First start interrupted after the recovery key file was written but
    # before it was recorded: the next start reuses that file.
    nid = json.loads(before)["node_id"]
    for f in n.dir.glob("trust.db*"):
        f.unlink()
    n.start()
    assert any(nid in line for line in n.output), n.output
    n.stop()
    assert json.loads(n.cli("key", "show", "--json").stdout)["node_id"] == nid


def test_lost_trust_database_is_not_a_new_identity(make_node, tmp_path):
    n = started(make_node, "lost")
    shutil.move(n.dir / "keys" / "recovery.key", tmp_path / "offline.key")
    for f in n.dir.glob("trust.db*"):
        f.unlink()
    # The node refuses to start rather than make itself a new identity.
    with pytest.raises(AssertionError):
        n.start()
    assert "restore trust.db" in (n.dir.parent / "data.stderr.log").read_text()
    r = n.cli("key", "show", check=False)
    assert r.returncode == 1 and "key history" in r.stderr


def test_descriptor_carries_the_organization_identity(make_node, tmp_path):
    a, b = started(make_node, "alpha"), started(make_node, "bravo")
    ident = {
        "type": "identity", "spec_version": "2.1",
        "id": "identity--6f4e3c2a-1b0d-4e5f-8a9b-0c1d2e3f4a5b",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "name": "Alpha national CERT", "identity_class": "organization",
    }
    bad = dict(ident, identity_class=7)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = a.cli("descriptor", "export", "--identity", tmp_path / "bad.json", check=False)
    assert r.returncode == REJECTED, r.stderr
    (tmp_path / "id.json").write_text(json.dumps(ident))
    a.cli("descriptor", "export", "--identity", tmp_path / "id.json", "--out", tmp_path / "a.json")
    b.cli("partner", "import", tmp_path / "a.json")
    shown = json.loads(b.cli("partner", "show", node_id(a), "--json").stdout)
    assert shown["descriptor"]["identity"] == ident
    assert shown["keys"]["node_id"] == node_id(a)
    # The identity is remembered for later exports.
    later = json.loads(a.cli("descriptor", "export").stdout)
    assert later["descriptor"]["document"]["identity"]["name"] == "Alpha national CERT"
