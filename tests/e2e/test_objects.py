"""Adding STIX objects made with the `stix2` library through the OASIS
client, and reading them back with every filter (TAXII 2.1 §5.3–§5.8).
What is served must be exactly what was posted (same JSON value)."""

import json

import pytest
import stix2

import support
from support import (
    STIX,
    TAXII,
    assert_status_shape,
    assert_taxii_error,
    by_id,
    get_json,
    indicator,
    post_envelope,
    served_objects,
)


@stix2.CustomObject("x-anyam-note", [("note", stix2.properties.StringProperty(required=True))])
class Note:
    pass


def stix2_sample() -> list[dict]:
    """One of each kind the suite cares about, made by the `stix2` library."""
    ident = stix2.Identity(name="CERT Example", identity_class="organization")
    ind = stix2.Indicator(
        name="C2 address",
        pattern="[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'c2.example.org']",
        pattern_type="stix",
        valid_from="2024-03-01T00:00:00Z",
        indicator_types=["malicious-activity"],
        created_by_ref=ident.id,
    )
    mal = stix2.Malware(name="ExampleRAT", is_family=True, malware_types=["remote-access-trojan"],
                        created_by_ref=ident.id)
    rel = stix2.Relationship(ind, "indicates", mal, created_by_ref=ident.id)
    ip = stix2.IPv4Address(value="198.51.100.7")
    dom = stix2.DomainName(value="c2.example.org", resolves_to_refs=[ip.id])
    f = stix2.File(name="dropper.exe", hashes={
        "SHA-256": "4bac27393bdd9777ce02453256c5577cd02275510b2227f473d03f533924f877",
        "MD5": "8a0f35e9f7c0c9d3f1f0d6a1a9b4b2c1",
    })
    custom = stix2.Malware(name="Custom props", is_family=False, allow_custom=True,
                           x_anyam_confidence_note={"source": "sensor-7", "scores": [1, 2, 3]})
    note = Note(note="Catatan: ancaman baru (Bahasa Indonesia) — ünïcödé ✓")
    objs = [json.loads(o.serialize()) for o in (ident, ind, mal, rel, ip, dom, f, custom, note)]
    # Values a re-serializing server would damage: a 70-bit integer and
    # characters outside the BMP.
    objs[7]["x_anyam_big"] = 1180591620717411303424
    objs[7]["x_anyam_text"] = "emoji 🛡️ and escapes \" \\ \u0001"
    return objs


@pytest.fixture(scope="module")
def posted(node):
    """A collection holding the sample, posted with `Collection.add_objects`."""
    cid = node.add_collection("objects-module")
    objs = stix2_sample()
    coll = node.collection(cid)
    status = coll.add_objects({"objects": objs})
    assert status.status == "complete"
    assert status.total_count == len(objs)
    assert status.success_count == len(objs), status.failures
    assert status.failure_count == 0
    assert {s["id"] for s in status.successes} == {o["id"] for o in objs}
    return cid, objs, coll


def test_everything_posted_is_served_unchanged(posted):
    _, objs, coll = posted
    env = coll.get_objects()
    assert env.get("more") is False
    assert by_id(served_objects(env)) == by_id(objs)
    # The suite's response hook ran the OASIS validator over what was served.
    assert all(support.is_validated(o) for o in served_objects(env))


def test_get_each_object_by_id(posted):
    _, objs, coll = posted
    for o in objs:
        env = coll.get_object(o["id"])
        assert served_objects(env) == [o]


def test_served_text_keeps_exotic_values(node, admin, posted):
    """A big integer and non-BMP text survive byte for byte in value."""
    cid, objs, _ = posted
    custom = objs[7]
    r = admin.get(node.object_url(cid, custom["id"]))
    assert r.status_code == 200
    served = json.loads(r.text)["objects"][0]
    assert served["x_anyam_big"] == 1180591620717411303424
    assert served["x_anyam_text"] == custom["x_anyam_text"]
    assert served == custom


def type_filter_cases():
    return [
        ("indicator", {"indicator"}),
        ("malware", {"malware"}),
        ("indicator,malware", {"indicator", "malware"}),
        ("ipv4-addr,domain-name,file", {"ipv4-addr", "domain-name", "file"}),
        ("x-anyam-note", {"x-anyam-note"}),
        ("no-such-type", set()),
    ]


@pytest.mark.parametrize("types, expected", type_filter_cases())
def test_match_type(posted, types, expected):
    _, objs, coll = posted
    env = coll.get_objects(type=types.split(","))
    got = served_objects(env)
    assert {o["type"] for o in got} == expected
    assert by_id(got) == {o["id"]: o for o in objs if o["type"] in expected}


def test_match_id_single_and_list(posted):
    _, objs, coll = posted
    one = objs[1]["id"]
    assert [o["id"] for o in served_objects(coll.get_objects(id=one))] == [one]
    wanted = {objs[0]["id"], objs[3]["id"], objs[6]["id"]}
    got = served_objects(coll.get_objects(id=sorted(wanted)))
    assert {o["id"] for o in got} == wanted
    assert served_objects(coll.get_objects(id="indicator--00000000-0000-4000-8000-000000000000")) == []


@pytest.mark.parametrize("spec_version, expect_all", [("2.1", True), ("2.0", False), ("2.0,2.1", True)])
def test_match_spec_version(posted, spec_version, expect_all):
    _, objs, coll = posted
    got = served_objects(coll.get_objects(spec_version=spec_version.split(",")))
    assert len(got) == (len(objs) if expect_all else 0)


def test_combined_filters_are_anded(posted):
    _, objs, coll = posted
    ind = objs[1]
    got = served_objects(coll.get_objects(type="indicator", id=[ind["id"], objs[2]["id"]]))
    assert got == [ind]


def test_manifest_describes_every_object(posted):
    _, objs, coll = posted
    man = coll.get_manifest()
    entries = man["objects"]
    assert {e["id"] for e in entries} == {o["id"] for o in objs}
    for e in entries:
        o = by_id(objs)[e["id"]]
        assert e["media_type"] == STIX
        assert e["date_added"].endswith("Z")
        # TAXII 2.1 §3.8: an object's version is its `modified`.
        if "modified" in o:
            assert e["version"] == o["modified"]
    added = [e["date_added"] for e in entries]
    assert added == sorted(added)
    assert len(set(added)) == len(added), "date_added must order the versions of one POST"


def test_added_after_returns_only_later_objects(posted):
    _, objs, coll = posted
    entries = coll.get_manifest()["objects"]
    cut = entries[3]["date_added"]
    later = {e["id"] for e in entries[4:]}
    assert {o["id"] for o in served_objects(coll.get_objects(added_after=cut))} == later
    assert {e["id"] for e in coll.get_manifest(added_after=cut)["objects"]} == later
    assert served_objects(coll.get_objects(added_after=entries[-1]["date_added"])) == []


def test_manifest_filters(posted):
    _, objs, coll = posted
    man = coll.get_manifest(type="malware")
    assert {e["id"] for e in man["objects"]} == {o["id"] for o in objs if o["type"] == "malware"}


def test_date_added_headers(node, admin, posted):
    """TAXII 2.1 §3.3.1: X-TAXII-Date-Added-First/Last bound the page."""
    cid, objs, coll = posted
    entries = coll.get_manifest()["objects"]
    for url in (node.objects_url(cid), node.collection_url(cid) + "manifest/"):
        _, r = get_json(admin, url)
        assert r.headers["X-TAXII-Date-Added-First"] == entries[0]["date_added"]
        assert r.headers["X-TAXII-Date-Added-Last"] == entries[-1]["date_added"]
    one = entries[2]
    _, r = get_json(admin, node.object_url(cid, one["id"]))
    assert r.headers["X-TAXII-Date-Added-First"] == one["date_added"]
    assert r.headers["X-TAXII-Date-Added-Last"] == one["date_added"]
    _, r = get_json(admin, node.object_url(cid, one["id"]) + "versions/")
    assert r.headers["X-TAXII-Date-Added-First"] == one["date_added"]


def test_single_version_object_versions(posted):
    _, objs, coll = posted
    ind = objs[1]
    assert coll.object_versions(ind["id"])["versions"] == [ind["modified"]]


def test_status_resource_of_a_post(node, admin, collection_id):
    st = post_envelope(admin, node.objects_url(collection_id), [indicator(7)])
    body, _ = get_json(admin, node.status_url(st["id"]))
    assert body == st
    status = node.api_root().get_status(st["id"])
    assert status.status == "complete" and status.success_count == 1


def test_reposting_identical_content_is_a_success(node, admin, posted):
    """Identical content again is a success (not a failure) and changes nothing."""
    cid, objs, _ = posted
    before = get_json(admin, node.collection_url(cid) + "manifest/")[0]["objects"]
    st = post_envelope(admin, node.objects_url(cid), objs)
    assert {s["id"] for s in st["successes"]} == {o["id"] for o in objs}
    # The same JSON value in other formatting and key order is the same content.
    text = json.dumps({"objects": [dict(reversed(list(o.items()))) for o in objs]}, indent=3)
    r = admin.post(node.objects_url(cid), data=text, headers={"Content-Type": TAXII})
    assert r.status_code == 202
    st2 = r.json()
    assert_status_shape(st2)
    assert st2["success_count"] == len(objs) and st2["failure_count"] == 0, st2
    after = get_json(admin, node.collection_url(cid) + "manifest/")[0]["objects"]
    assert after == before


def test_delete_an_object(node, posted):
    _, objs, coll = posted
    victim = objs[5]
    coll.delete_object(victim["id"])
    r = node.session().get(node.object_url(posted[0], victim["id"]))
    assert_taxii_error(r, 404)
    assert victim["id"] not in {o["id"] for o in served_objects(coll.get_objects())}
    # Put it back for the other tests of the module.
    coll.add_objects({"objects": [victim]})
    assert served_objects(coll.get_object(victim["id"])) == [victim]


def test_objects_by_alias_path(node, admin):
    cid = node.add_collection("alias-objects", alias="alias-objects")
    o = indicator(3)
    post_envelope(admin, node.objects_url("alias-objects"), [o])
    env, _ = get_json(admin, node.objects_url(cid))
    assert served_objects(env) == [o]
    env, _ = get_json(admin, node.objects_url("alias-objects"))
    assert served_objects(env) == [o]


def test_status_refresh_through_the_oasis_client(node, collection_id):
    """`Status.refresh()` of the status `add_objects` returns: the client
    builds the status URL without the trailing slash (…/status/{id})."""
    coll = node.collection(collection_id)
    status = coll.add_objects({"objects": [indicator(8)]})
    status.refresh()
    assert status.status == "complete" and status.success_count == 1


def test_same_object_twice_in_one_envelope(node, admin, collection_id):
    o = indicator(9)
    st = post_envelope(admin, node.objects_url(collection_id), [o, o])
    assert [s["id"] for s in st["successes"]] == [o["id"], o["id"]]
    env, _ = get_json(admin, node.object_url(collection_id, o["id"]), **{"match[version]": "all"})
    assert served_objects(env) == [o]


def test_large_object_round_trip(node, admin, collection_id):
    o = indicator(description="Ancaman " * 250_000)  # 2 MB
    post_envelope(admin, node.objects_url(collection_id), [o])
    env, _ = get_json(admin, node.object_url(collection_id, o["id"]))
    assert served_objects(env) == [o]


def test_delete_answers_200(node, admin, collection_id):
    """TAXII 2.1 §5.7: a successful delete is 200."""
    o = indicator(11)
    post_envelope(admin, node.objects_url(collection_id), [o])
    r = admin.delete(node.object_url(collection_id, o["id"]))
    assert r.status_code == 200, r.text
    assert_taxii_error(admin.get(node.object_url(collection_id, o["id"])), 404)
