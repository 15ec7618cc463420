"""The release decision over HTTP: TLP 2.0 markings, constituents, TLP:RED
recipients, unknown and spoofed markings, on every read path (objects,
object, versions, manifest, search), and that what a caller may not see
leaves no trace in bodies, headers, counts, errors or status resources."""

import json
import uuid

import pytest

from support import (
    TAXII,
    TLP_AMBER,
    TLP_AMBER_STRICT,
    TLP_CLEAR,
    TLP_GREEN,
    TLP_RED,
    assert_taxii_error,
    get_json,
    indicator,
    post_envelope,
    served_objects,
)

RECIPIENTS_EXT = "extension-definition--4e0cee20-b640-4553-9aad-1c16c0c90a79"
TLP1_AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
SPOOF = "marking-definition--0d4a0f6e-3f70-4f5b-8a4f-4b3a0f6a9c11"


def recipients(node_id, *users):
    return {RECIPIENTS_EXT: {
        "extension_type": "property-extension",
        "recipients": [{"node_id": node_id, "user": u} for u in users],
    }}


@pytest.fixture(scope="module")
def world(node):
    """Host organization (admin) and two constituents: cert-a (a1, a2) and
    cert-b (b1); one collection all three read and write."""
    node_id = json.loads(node.cli("key", "show", "--json").stdout)["node_id"]
    for org in ("cert-a", "cert-b"):
        node.add_org(org)
    cid = node.add_collection("policy", grants={"host": "rw", "cert-a": "rw", "cert-b": "rw"})
    users = {"admin": node.session()}
    for name, org in (("a1", "cert-a"), ("a2", "cert-a"), ("b1", "cert-b")):
        node.add_user(name, org)
        users[name] = node.session(token=node.create_token(name)[1])
    spoof = {
        "type": "marking-definition", "spec_version": "2.1", "id": SPOOF,
        "created": "2024-01-01T00:00:00.000Z", "name": "TLP:CLEAR",
        "definition_type": "statement", "definition": {"statement": "TLP:CLEAR"},
    }
    o = {
        "clear": indicator(1, object_marking_refs=[TLP_CLEAR]),
        "green": indicator(2, object_marking_refs=[TLP_GREEN]),
        "amber": indicator(3, object_marking_refs=[TLP_AMBER]),
        "strict": indicator(4, object_marking_refs=[TLP_AMBER_STRICT]),
        "unmarked": indicator(5),
        "red": indicator(6, object_marking_refs=[TLP_RED], extensions=recipients(node_id, "a1")),
        # A granular AMBER marking makes the whole object AMBER: objects are
        # served whole.
        "granular": indicator(7, object_marking_refs=[TLP_CLEAR], granular_markings=[
            {"marking_ref": TLP1_AMBER, "selectors": ["description"]}]),
        "spoofed": indicator(8, object_marking_refs=[SPOOF]),
        "conflicting": indicator(9, object_marking_refs=[TLP_GREEN, TLP_AMBER_STRICT]),
    }
    # A word no other test uses, for search.
    for x in o.values():
        x["description"] = "policyprobe " + x["description"]
    post_envelope(users["admin"], node.objects_url(cid), [spoof, *o.values()])
    # Submitted by a constituent: its own organization keeps access.
    o["a_strict"] = indicator(10, object_marking_refs=[TLP_AMBER_STRICT], description="policyprobe a")
    o["a_red"] = indicator(11, object_marking_refs=[TLP_RED], extensions=recipients(node_id, "b1"),
                           description="policyprobe b")
    post_envelope(users["a1"], node.objects_url(cid), [o["a_strict"], o["a_red"]])
    return {"cid": cid, "users": users, "o": o, "node_id": node_id}


# Who sees what (by the rules documented in ARCHITECTURE.md and anyam-policy).
EXPECTED = {
    # admin submitted "red": the submitting user keeps access to its RED data.
    "admin": {"clear", "green", "amber", "strict", "unmarked", "red", "granular", "conflicting", "a_strict"},
    "a1": {"clear", "green", "amber", "red", "granular", "a_strict", "a_red"},
    "a2": {"clear", "green", "amber", "granular", "a_strict"},
    "b1": {"clear", "green", "amber", "granular", "a_red"},
}


def names(world, objects):
    ids = {o["id"]: k for k, o in world["o"].items()}
    return {ids[x["id"]] for x in objects if x["id"] in ids}


@pytest.mark.parametrize("user", sorted(EXPECTED))
def test_every_read_path_releases_exactly_what_the_rules_permit(node, world, user):
    s, cid = world["users"][user], world["cid"]
    want = EXPECTED[user]
    body, r = get_json(s, node.objects_url(cid))
    assert names(world, served_objects(body)) == want
    # Paging one at a time gives the same set, and nothing more.
    seen, nxt = [], None
    while True:
        params = {"limit": 1, **({"next": nxt} if nxt else {})}
        page, _ = get_json(s, node.objects_url(cid), **params)
        seen += served_objects(page)
        if not page.get("more"):
            break
        nxt = page["next"]
    assert names(world, seen) == want and len(seen) == len(set(x["id"] for x in seen))
    manifest, _ = get_json(s, node.collection_url(cid) + "manifest/")
    assert names(world, manifest.get("objects", [])) == want
    for key, o in world["o"].items():
        one = s.get(node.object_url(cid, o["id"]))
        versions = s.get(node.object_url(cid, o["id"]) + "versions/")
        if key in want:
            assert one.status_code == 200 and served_objects(one.json()) == [o]
            assert versions.status_code == 200 and versions.json()["versions"] == [o["modified"]]
        else:
            # Exactly what an absent object gets.
            absent = s.get(node.object_url(cid, f"indicator--{uuid.uuid4()}"))
            body = assert_taxii_error(one, 404)
            assert body == assert_taxii_error(absent, 404)
            assert_taxii_error(versions, 404)
            for name in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
                assert name not in one.headers


def test_headers_count_only_what_is_released(node, world):
    s, cid = world["users"]["b1"], world["cid"]
    body, r = get_json(s, node.objects_url(cid))
    objs = served_objects(body)
    dates, _ = get_json(s, node.collection_url(cid) + "manifest/")
    added = sorted(m["date_added"] for m in dates["objects"])
    assert r.headers["X-TAXII-Date-Added-First"] == added[0]
    assert r.headers["X-TAXII-Date-Added-Last"] == added[-1]
    assert len(objs) == len(added)


@pytest.mark.parametrize("user", sorted(EXPECTED))
def test_search_goes_through_the_same_decision(node, world, user):
    s = world["users"][user]
    url = node.root_url() + "search/"
    r = s.get(url, params={"q": "policyprobe", "limit": 1000})
    assert r.json()["more"] is False
    assert r.status_code == 200, r.text
    got = {h["object"]["id"] for h in r.json()["results"] if h["collection"] == world["cid"]}
    assert names(world, [{"id": i} for i in got]) == EXPECTED[user]
    # Exact value lookup: the RED indicators' addresses. (Other tests share
    # the node and post the same addresses elsewhere: only this
    # collection's hits count.)
    def by_value(v):
        hits = s.get(url, params={"value": v}).json()["results"]
        return [h for h in hits if h["collection"] == world["cid"]]
    assert bool(by_value("10.0.0.6")) == ("red" in EXPECTED[user])
    assert bool(by_value("10.0.0.11")) == ("a_red" in EXPECTED[user])


def test_search_rejects_bad_parameters(node, world):
    s = world["users"]["a1"]
    url = node.root_url() + "search/"
    assert s.get(url).status_code == 400
    assert s.get(url, params={"q": "x", "limit": "0"}).status_code == 400
    assert s.get(url, params={"q": "x", "colour": "red"}).status_code == 400
    # Query syntax in the words is taken literally, not as an error.
    assert s.get(url, params={"q": 'NEAR( "OR *'}).status_code == 200


def test_a_conflict_with_an_invisible_version_reveals_nothing(node, world):
    s, cid = world["users"]["b1"], world["cid"]
    hidden = dict(world["o"]["strict"], name="different content")
    visible = dict(world["o"]["green"], name="different content")
    r = s.post(node.objects_url(cid), data=json.dumps({"objects": [hidden, visible]}),
               headers={"Content-Type": TAXII})
    st = r.json()
    assert st["failure_count"] == 2
    msgs = {f["id"]: f["message"] for f in st["failures"]}
    assert "already stored" not in msgs[hidden["id"]] and "conflict" not in msgs[hidden["id"]]
    assert "conflict" in msgs[visible["id"]]
    # An identical copy of a version the writer cannot see succeeds without
    # saying it was already there; one it can see says so.
    r = s.post(node.objects_url(cid), data=json.dumps({"objects": [world["o"]["strict"], world["o"]["green"]]}),
               headers={"Content-Type": TAXII})
    ok = {x["id"]: x.get("message") for x in r.json()["successes"]}
    assert ok[world["o"]["strict"]["id"]] is None
    assert ok[world["o"]["green"]["id"]] == "already stored with identical content"


def test_marking_definitions_referenced_are_resolvable(node, world):
    """The standard TLP definitions are released to anyone with the read
    right; a partner's look-alike is not standard and follows the default."""
    s, cid = world["users"]["b1"], world["cid"]
    tlp = {"type": "marking-definition", "spec_version": "2.1", "id": TLP_GREEN,
           "created": "2022-10-01T00:00:00.000Z", "name": "TLP:GREEN",
           "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
               "extension_type": "property-extension", "tlp_2_0": "green"}}}
    post_envelope(world["users"]["admin"], node.objects_url(cid), [tlp])
    assert s.get(node.object_url(cid, TLP_GREEN)).status_code == 200
    assert_taxii_error(s.get(node.object_url(cid, SPOOF)), 404)


def test_the_operator_accepts_a_marking_as_a_statement(node, world):
    """Unknown markings deny release until the operator says what they
    mean; a statement restricts nothing, so the default for unmarked data
    then applies (host organization only)."""
    cid = world["cid"]
    spoofed = world["o"]["spoofed"]
    admin = world["users"]["admin"]
    assert_taxii_error(admin.get(node.object_url(cid, spoofed["id"])), 404)
    node.cli("marking", "accept", SPOOF, "--as", "statement")
    try:
        assert admin.get(node.object_url(cid, spoofed["id"])).status_code == 200
        assert_taxii_error(world["users"]["b1"].get(node.object_url(cid, spoofed["id"])), 404)
        listed = json.loads(node.cli("marking", "list", "--json").stdout)
        assert any(m["id"] == SPOOF and m["as"] == "statement" for m in listed["accepted"])
    finally:
        node.cli("marking", "remove", SPOOF)
    assert_taxii_error(admin.get(node.object_url(cid, spoofed["id"])), 404)


def test_a_write_only_token_sees_nothing_and_learns_nothing(node, world):
    cid = world["cid"]
    node.add_user("b-writer", "cert-b")
    w = node.session(token=node.create_token("b-writer", "--scope", "write")[1])
    assert_taxii_error(w.get(node.objects_url(cid)), 403)
    assert w.get(node.root_url() + "search/", params={"q": "bad"}).json()["results"] == []


RELIABILITY_EXT = "extension-definition--2e2ab2c2-eecf-4d4b-83ed-a9348fbb68c6"


def rated(n, reliability=None, confidence=None):
    extra = {"object_marking_refs": [TLP_GREEN]}
    if reliability:
        extra["extensions"] = {RELIABILITY_EXT: {
            "extension_type": "property-extension", "source_reliability": reliability}}
    if confidence is not None:
        extra["confidence"] = confidence
    return indicator(n, name=f"rated source {n}", **extra)


def test_admiralty_filter_on_objects_manifest_and_search(node, world):
    cid = node.add_collection("rated", grants={"host": "rw", "cert-a": "r"})
    objs = {
        "A1": rated(100, "A", 95), "B2": rated(101, "B", 70), "B4": rated(102, "B", 30),
        "D1": rated(103, "D", 85), "unrated": rated(104), "A6": rated(105, "A"),
    }
    post_envelope(world["users"]["admin"], node.objects_url(cid), list(objs.values()))
    s = world["users"]["a1"]
    ids = {o["id"]: k for k, o in objs.items()}
    cases = [
        ({"min_reliability": "B"}, {"A1", "B2", "B4", "A6"}),
        ({"min_credibility": "2"}, {"A1", "B2", "D1"}),
        ({"min_reliability": "b", "min_credibility": "2"}, {"A1", "B2"}),
        ({"min_credibility": "6"}, set(objs)),
    ]
    for params, want in cases:
        body, _ = get_json(s, node.objects_url(cid), **params)
        assert {ids[o["id"]] for o in served_objects(body)} == want, params
        manifest, _ = get_json(s, node.collection_url(cid) + "manifest/", **params)
        assert {ids[m["id"]] for m in manifest.get("objects", [])} == want, params
        found = s.get(node.root_url() + "search/", params={"q": "rated", **params}).json()["results"]
        assert {ids[h["object"]["id"]] for h in found if h["object"]["id"] in ids} == want, params
    assert_taxii_error(s.get(node.objects_url(cid), params={"min_reliability": "G"}), 400)
    assert_taxii_error(s.get(node.objects_url(cid), params={"min_credibility": "0"}), 400)


def test_first_and_last_are_the_readers_own(node, world):
    """A newer version the reader may not see does not exist for it: its
    `last` is the newest version it may see, on every path."""
    cid = world["cid"]
    v1 = indicator(200, object_marking_refs=[TLP_GREEN])
    v2 = dict(v1, modified="2024-06-01T00:00:00.000Z", object_marking_refs=[TLP_AMBER_STRICT],
              name="restricted revision")
    post_envelope(world["users"]["admin"], node.objects_url(cid), [v1, v2])
    b1, admin = world["users"]["b1"], world["users"]["admin"]
    for s, want in ((b1, v1), (admin, v2)):
        one, _ = get_json(s, node.object_url(cid, v1["id"]))
        assert served_objects(one) == [want]
        versions, _ = get_json(s, node.object_url(cid, v1["id"]) + "versions/")
        assert versions["versions"] == ([v1["modified"]] if s is b1 else [v1["modified"], v2["modified"]])
        listing, _ = get_json(s, node.objects_url(cid), **{"match[id]": v1["id"]})
        assert served_objects(listing) == [want]
        first, _ = get_json(s, node.objects_url(cid), **{"match[id]": v1["id"], "match[version]": "first"})
        assert served_objects(first) == [v1]
        manifest, _ = get_json(s, node.collection_url(cid) + "manifest/", **{"match[id]": v1["id"]})
        assert [m["version"] for m in manifest["objects"]] == [want["modified"]]
        found = s.get(node.root_url() + "search/", params={"value": "10.0.0.200"}).json()["results"]
        assert [h["object"] for h in found if h["collection"] == cid] == [want]
    # The restricted revision's name finds nothing for b1.
    found = b1.get(node.root_url() + "search/", params={"q": "restricted revision"}).json()["results"]
    assert [h for h in found if h["collection"] == cid] == []
