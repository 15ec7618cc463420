"""The operator's commands against a running node: import (with a report
of what was rejected), export (a bundle the OASIS validator accepts, and
only what the named user may see), backup (a consistent database copy
that a node can serve from)."""

import json
import re
import sqlite3
import uuid

import pytest
import stix2validator

from support import (
    Node,
    assert_taxii_error,
    by_id,
    get_json,
    indicator,
    malware,
    post_envelope,
    served_objects,
)

SUMMARY = re.compile(r"imported into .*: (\d+) added, (\d+) already present, (\d+) rejected")


def summary(stdout: str) -> tuple[int, int, int]:
    m = SUMMARY.search(stdout)
    assert m, f"no import summary in {stdout!r}"
    return tuple(int(x) for x in m.groups())


def bundle(objects) -> dict:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


@pytest.fixture(scope="module")
def imported(node, tmp_path_factory):
    """A bundle of two valid objects and one indicator with a broken
    pattern, imported into a new collection by its alias."""
    tmp = tmp_path_factory.mktemp("cli")
    cid = node.add_collection("cli-import", alias="cli-import")
    good = [indicator(1), malware(2)]
    bad = indicator(3, pattern="[ipv4-addr:value = '1.2.3.4'")
    src = tmp / "input.json"
    src.write_text(json.dumps(bundle([good[0], bad, good[1]])))
    report = tmp / "report.jsonl"
    r = node.cli("import", src, "--collection", cid, "--report", report, check=False)
    return {"cid": cid, "good": good, "bad": bad, "src": src, "report": report, "result": r, "tmp": tmp}


def test_import_reports_the_rejected_object_and_exits_3(imported):
    r = imported["result"]
    assert r.returncode == 3, r.stdout + r.stderr
    assert summary(r.stdout) == (2, 0, 1)
    lines = [json.loads(line) for line in imported["report"].read_text().splitlines() if line.strip()]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["id"] == imported["bad"]["id"]
    assert entry["item"] == 2
    assert "pattern" in entry["error"]


def test_imported_objects_are_served_at_once(node, admin, imported):
    cid = imported["cid"]
    for o in imported["good"]:
        env, _ = get_json(admin, node.object_url(cid, o["id"]))
        assert served_objects(env) == [o]
    assert_taxii_error(admin.get(node.object_url(cid, imported["bad"]["id"])), 404)


def test_reimport_is_idempotent(node, imported):
    r = node.cli("import", imported["src"], "--collection", "cli-import", "--report", imported["tmp"] / "again.jsonl",
                 check=False)
    assert r.returncode == 3
    assert summary(r.stdout) == (0, 2, 1)


@pytest.mark.parametrize("form", ["json-lines", "json-array", "envelope"])
def test_import_from_stdin_in_every_form(node, admin, collection_id, form):
    objs = [indicator(10), indicator(11), malware(12)]
    text = {
        "json-lines": "\n".join(json.dumps(o) for o in objs) + "\n",
        "json-array": json.dumps(objs),
        "envelope": json.dumps({"objects": objs}),
    }[form]
    r = node.cli("import", "-", "--collection", collection_id, input=text)
    assert summary(r.stdout) == (3, 0, 0)
    env, _ = get_json(admin, node.objects_url(collection_id))
    assert by_id(served_objects(env)) == by_id(objs)


def test_a_truncated_bundle_stores_what_came_whole_and_names_where_it_broke(node, admin, tmp_path):
    """The import streams its input: a bundle cut off part way (a broken
    download) stores every object read whole before the cut, across more
    than one write batch, and fails naming the place; importing the whole
    file afterwards adds only the rest."""
    cid = node.add_collection("cli-truncated")
    objs = [indicator(30_000 + i) for i in range(5_003)]
    whole = json.dumps(bundle(objs + [malware(1)]))
    cut = whole.index('{"type": "malware"') + 30
    src = tmp_path / "truncated.json"
    src.write_text(whole[:cut])
    r = node.cli("import", src, "--collection", cid, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not a JSON object" in r.stderr and f"line 1 column {cut}" in r.stderr, r.stderr
    assert "5003 objects were added" in r.stderr, r.stderr
    for o in (objs[0], objs[4_999], objs[5_002]):
        env, _ = get_json(admin, node.object_url(cid, o["id"]))
        assert served_objects(env) == [o]
    src.write_text(whole)
    r = node.cli("import", src, "--collection", cid)
    assert summary(r.stdout) == (1, 5_003, 0)


def test_export_is_a_valid_bundle_with_the_imported_objects(node, imported):
    out = imported["tmp"] / "export.json"
    node.cli("export", "--collection", imported["cid"], "-o", out)
    text = out.read_text()
    result = stix2validator.validate_string(text)
    assert result.is_valid, [str(e) for e in result.errors]
    exported = json.loads(text)
    assert exported["type"] == "bundle"
    assert by_id(exported["objects"]) == by_id(imported["good"])


def test_export_filters_by_type_and_versions(node, collection_id, tmp_path):
    oid = f"indicator--{uuid.uuid4()}"
    v1 = indicator(20, id=oid, modified="2024-01-01T00:00:00.000Z")
    v2 = indicator(20, id=oid, modified="2024-06-01T00:00:00.000Z", name="second")
    m = malware(21)
    node.cli("import", "-", "--collection", collection_id, input=json.dumps([v1, v2, m]))

    def export(*args):
        out = tmp_path / f"export-{uuid.uuid4().hex}.json"
        node.cli("export", "--collection", collection_id, "-o", out, *args)
        return json.loads(out.read_text())["objects"]

    assert sorted(export(), key=lambda o: o["type"]) == [v2, m]
    assert export("--type", "malware") == [m]
    assert sorted(export("--all-versions", "--type", "indicator"), key=lambda o: o["modified"]) == [v1, v2]


def test_export_as_a_user_without_access_leaks_nothing(node, imported):
    """The release decision applies to export. Either the export succeeds
    with no object, or it fails, says why, and leaves no truncated bundle
    (nothing half-written) for a downstream tool to choke on."""
    node.add_org("cli-outsiders")
    node.add_user("cli-outsider", "cli-outsiders")
    out = imported["tmp"] / "outsider.json"
    r = node.cli("export", "--collection", imported["cid"], "--as", "cli-outsider", "-o", out, check=False)
    written = out.read_text() if out.exists() else ""
    for o in imported["good"]:
        assert o["id"] not in written + r.stdout + r.stderr
    if r.returncode == 0:
        assert json.loads(written).get("objects", []) == []
        return
    assert r.stderr.strip(), "a failed export must say why"
    if written.strip():
        try:
            json.loads(written)
        except ValueError:
            pytest.fail(f"export exited {r.returncode} and left a truncated bundle: {written[:100]!r}")


def test_backup_is_a_database_a_node_can_serve(node, imported, tmp_path, make_node):
    dest = tmp_path / "backup.db"
    r = node.cli("backup", dest)
    assert dest.is_file() and dest.stat().st_size > 0, r.stdout
    with sqlite3.connect(f"file:{dest}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "objects" in tables, tables
        assert db.execute("SELECT count(*) FROM objects").fetchone()[0] >= len(imported["good"])
    # The trust database and the audit log are copied beside it, whole.
    for side, table in (("backup.trust.db", "agreements"), ("backup.audit.db", "entries")):
        with sqlite3.connect(f"file:{tmp_path / side}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert table in tables, (side, tables)
    # A backup never overwrites a file.
    again = node.cli("backup", dest, check=False)
    assert again.returncode != 0
    # A node started on the copy serves the same users, collections and objects.
    copy = make_node("restored", admin_password=None)
    copy.dir.mkdir(parents=True)
    (copy.dir / "anyam.db").write_bytes(dest.read_bytes())
    copy.start()
    s = copy.session(password=node.admin_password)
    for o in imported["good"]:
        env, _ = get_json(s, copy.object_url(imported["cid"], o["id"]))
        assert served_objects(env) == [o]


def test_admin_commands_fail_clearly_on_a_directory_without_a_node(tmp_path):
    empty = Node(tmp_path / "nothing-here")
    r = empty.cli("collection", "list", check=False)
    assert r.returncode != 0
    assert "no anyam.db" in r.stderr or "holds no Anyam node" in r.stderr, r.stderr


def test_cli_imports_and_taxii_posts_interleave_in_date_added_order(node, admin, collection_id):
    """Two writers (the node and the CLI, separate processes) on one
    collection: each write's objects get later date_added than every
    earlier write's, so added_after paging never skips one."""
    rounds = []
    for i in range(4):
        via_taxii = [indicator(1000 + 10 * i + k) for k in range(3)]
        post_envelope(admin, node.objects_url(collection_id), via_taxii)
        via_cli = [indicator(2000 + 10 * i + k) for k in range(3)]
        node.cli("import", "-", "--collection", collection_id, input=json.dumps(via_cli))
        rounds += [via_taxii, via_cli]
    entries = get_json(admin, node.collection_url(collection_id) + "manifest/")[0]["objects"]
    added = {e["id"]: e["date_added"] for e in entries}
    for earlier, later in zip(rounds, rounds[1:]):
        assert max(added[o["id"]] for o in earlier) < min(added[o["id"]] for o in later)
    # Paging by added_after with a small page sees every object once.
    seen, after = [], None
    while True:
        env, r = get_json(admin, node.objects_url(collection_id), limit=5, **({"added_after": after} if after else {}))
        if not served_objects(env):
            break
        seen += [o["id"] for o in served_objects(env)]
        after = r.headers["X-TAXII-Date-Added-Last"]
    assert sorted(seen) == sorted(o["id"] for batch in rounds for o in batch)
