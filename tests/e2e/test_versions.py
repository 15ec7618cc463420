"""Versions of one object (STIX 2.1 §3.6, TAXII 2.1 §3.4.2 match[version],
§5.8 versions endpoint, §5.7 delete)."""

import pytest

from support import assert_taxii_error, get_json, indicator, post_envelope, served_objects

T = ["2024-01-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"]


def versions_of(oid: str) -> list[dict]:
    """Four versions: three revisions and finally a revocation."""
    vs = [indicator(i, id=oid, created=T[0], modified=T[i], name=f"revision {i}") for i in range(4)]
    vs[3]["revoked"] = True
    return vs


@pytest.fixture(scope="module")
def history(node):
    """Object A: four versions posted one by one in order. Object B: two
    versions posted in one envelope, the newer one first."""
    cid = node.add_collection("versions-module")
    s = node.session()
    a = versions_of("indicator--a0a0a0a0-0000-4000-8000-000000000001")
    for v in a:
        post_envelope(s, node.objects_url(cid), [v])
    b = [indicator(10, id="indicator--b0b0b0b0-0000-4000-8000-000000000002", created=T[0], modified=t) for t in T[:2]]
    post_envelope(s, node.objects_url(cid), [b[1], b[0]])
    return cid, a, b, node.collection(cid)


def test_default_is_the_latest_version(history):
    _, a, b, coll = history
    assert served_objects(coll.get_object(a[0]["id"])) == [a[3]]
    assert served_objects(coll.get_object(b[0]["id"])) == [b[1]]
    listing = served_objects(coll.get_objects())
    assert sorted(listing, key=lambda o: o["id"]) == [a[3], b[1]]


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("first", [0]),
        ("last", [3]),
        ("all", [0, 1, 2, 3]),
        (T[1], [1]),
        # The same instant written with another precision is the same version.
        ("2024-03-01T00:00:00Z", [2]),
        ("first,last", [0, 3]),
        (f"{T[1]},{T[2]}", [1, 2]),
        ("first," + T[0], [0]),
    ],
)
def test_match_version_on_one_object(history, selector, expected):
    _, a, _, coll = history
    got = served_objects(coll.get_object(a[0]["id"], version=selector.split(",")))
    assert sorted(got, key=lambda o: o["modified"]) == [a[i] for i in expected]


def test_last_means_latest_modified_not_latest_added(history):
    """B's newer version was added before its older one; `last` is still the
    newer (the version is `modified`, TAXII 2.1 §3.4.2)."""
    _, _, b, coll = history
    assert served_objects(coll.get_object(b[0]["id"], version="last")) == [b[1]]
    assert served_objects(coll.get_object(b[0]["id"], version="first")) == [b[0]]


def test_match_version_on_the_listing(history):
    _, a, b, coll = history
    got = served_objects(coll.get_objects(version="all"))
    assert sorted(got, key=lambda o: (o["id"], o["modified"])) == a + b
    got = served_objects(coll.get_objects(version="first"))
    assert sorted(got, key=lambda o: o["id"]) == [a[0], b[0]]
    got = served_objects(coll.get_objects(version=T[1]))
    assert sorted(got, key=lambda o: o["id"]) == [a[1], b[1]]


def test_a_version_that_does_not_exist_is_404(node, admin, history):
    cid, a, _, _ = history
    r = admin.get(node.object_url(cid, a[0]["id"]), params={"match[version]": "2023-01-01T00:00:00.000Z"})
    assert_taxii_error(r, 404)


def test_revoked_version_is_served_as_posted(history):
    _, a, _, coll = history
    latest = served_objects(coll.get_object(a[0]["id"]))[0]
    assert latest["revoked"] is True


def test_versions_endpoint(history):
    _, a, b, coll = history
    assert coll.object_versions(a[0]["id"])["versions"] == T
    assert sorted(coll.object_versions(b[0]["id"])["versions"]) == T[:2]


def test_versions_endpoint_pages(node, admin, history):
    cid, a, _, _ = history
    url = node.object_url(cid, a[0]["id"]) + "versions/"
    first, _ = get_json(admin, url, limit=3)
    assert first["more"] is True and first["versions"] == T[:3]
    second, _ = get_json(admin, url, limit=3, next=first["next"])
    assert second["versions"] == T[3:]
    assert second.get("more") is False


def test_manifest_with_all_versions(history):
    _, a, _, coll = history
    entries = coll.get_manifest(id=a[0]["id"], version="all")["objects"]
    assert [e["version"] for e in entries] == T
    assert [e["id"] for e in entries] == [a[0]["id"]] * 4


def test_delete_one_version_then_all(node, admin):
    """TAXII 2.1 §5.7: a version filter deletes the matching versions only;
    without one, every version goes."""
    cid = node.add_collection("versions-delete")
    oid = "indicator--d0d0d0d0-0000-4000-8000-000000000003"
    vs = versions_of(oid)
    post_envelope(admin, node.objects_url(cid), vs)
    coll = node.collection(cid)
    coll.delete_object(oid, version="first")
    assert coll.object_versions(oid)["versions"] == T[1:]
    coll.delete_object(oid, version=T[2])
    assert coll.object_versions(oid)["versions"] == [T[1], T[3]]
    coll.delete_object(oid)
    for url in (node.object_url(cid, oid), node.object_url(cid, oid) + "versions/"):
        assert_taxii_error(admin.get(url), 404)
    assert_taxii_error(admin.delete(node.object_url(cid, oid)), 404)


def test_new_version_after_many_is_last(node, admin, history):
    """A later `modified` posted afterwards becomes the default version."""
    cid = node.add_collection("versions-late")
    oid = "indicator--e0e0e0e0-0000-4000-8000-000000000004"
    v1 = indicator(1, id=oid, created=T[0], modified=T[0])
    post_envelope(admin, node.objects_url(cid), [v1])
    v2 = dict(v1, modified=T[1], name="revised")
    post_envelope(admin, node.objects_url(cid), [v2])
    env, _ = get_json(admin, node.object_url(cid, oid))
    assert served_objects(env) == [v2]


def test_versions_endpoint_added_after(node, admin, history):
    """TAXII 2.1 §5.8: the versions endpoint takes added_after."""
    cid, a, _, coll = history
    entries = coll.get_manifest(id=a[0]["id"], version="all")["objects"]
    body, _ = get_json(admin, node.object_url(cid, a[0]["id"]) + "versions/", added_after=entries[1]["date_added"])
    assert body["versions"] == T[2:]


def test_get_an_object_pages_its_versions(node, admin, history):
    """TAXII 2.1 §5.5: Get An Object takes limit and next."""
    cid, a, _, _ = history
    url = node.object_url(cid, a[0]["id"])
    first, r = get_json(admin, url, limit=2, **{"match[version]": "all"})
    assert first["more"] is True
    rest, _ = get_json(admin, url, limit=2, next=first["next"], **{"match[version]": "all"})
    got = served_objects(first) + served_objects(rest)
    assert sorted(got, key=lambda o: o["modified"]) == a
    assert rest.get("more") is False
