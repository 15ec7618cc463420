"""Bad input: whole requests the node must refuse (400, 404, 406, 413,
415), and single objects it must refuse inside an accepted POST, each
named in the status resource's failures and never stored."""

import json
import re
import uuid

import pytest

from support import (
    TAXII,
    assert_status_shape,
    assert_taxii_error,
    get_json,
    indicator,
    malware,
    oneshot,
    post_envelope,
    served_objects,
)

TINY = 2048


@pytest.fixture(scope="module")
def cid(node):
    return node.add_collection("errors-module")


# --- whole requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"objects": [', id="truncated-json"),
        pytest.param(b"objects please", id="not-json"),
        pytest.param(b'\xff\xfe{"objects": []}', id="not-utf8"),
        pytest.param(b"[]", id="json-array"),
        pytest.param(b'"objects"', id="json-string"),
        pytest.param(b"42", id="json-number"),
        pytest.param(b'{"objects": "indicator"}', id="objects-not-a-list"),
        pytest.param(b'{"objects": {"type": "indicator"}}', id="objects-an-object"),
        pytest.param(b"", id="empty-body"),
    ],
)
def test_body_that_is_not_an_envelope_is_400(node, admin, cid, body):
    """TAXII 2.1 §5.4: the request body is an envelope; anything else is a
    bad request, and nothing of it is stored."""
    before = get_json(admin, node.collection_url(cid) + "manifest/")[0]
    r = admin.post(node.objects_url(cid), data=body, headers={"Content-Type": TAXII})
    body = assert_taxii_error(r, 400)
    assert body.get("description"), "a 400 should say what is wrong"
    assert get_json(admin, node.collection_url(cid) + "manifest/")[0] == before


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/stix+json;version=2.1", "application/taxii+json;version=2.0",
     "text/plain", None],
)
def test_post_with_another_media_type_is_415(node, admin, cid, content_type):
    """TAXII 2.1 §1.6.8, §5.4: the body must be `application/taxii+json`."""
    o = indicator()
    headers = {"Content-Type": content_type} if content_type else {}
    data = json.dumps({"objects": [o]}).encode()
    r = oneshot(admin, "POST", node.objects_url(cid), data=data, headers=headers)
    if content_type is None:
        # requests adds no Content-Type for bytes; the node must not guess.
        assert "Content-Type" not in r.request.headers
    assert_taxii_error(r, 415)
    assert_taxii_error(admin.get(node.object_url(cid, o["id"])), 404)


@pytest.mark.parametrize("content_type", [TAXII, "application/taxii+json", "application/taxii+json; version=2.1",
                                          "application/taxii+json;version=2.1;charset=utf-8"])
def test_post_accepts_the_taxii_media_type_with_or_without_version(node, admin, cid, content_type):
    o = indicator()
    r = admin.post(node.objects_url(cid), data=json.dumps({"objects": [o]}), headers={"Content-Type": content_type})
    assert r.status_code == 202, r.text
    assert r.json()["success_count"] == 1


def test_post_that_does_not_accept_taxii_is_406(node, admin, cid):
    o = indicator()
    r = oneshot(admin, "POST", node.objects_url(cid), data=json.dumps({"objects": [o]}),
                headers={"Content-Type": TAXII, "Accept": "application/json"})
    assert_taxii_error(r, 406)


@pytest.fixture(scope="module")
def tiny(node):
    """An API root whose max_content_length is 2 KiB, and a collection in it."""
    node.cli("api-root", "add", "tiny", "--title", "Tiny", "--max-content-length", TINY)
    return node.add_collection("tiny-collection", api_root="tiny")


def _body_of_size(size: int) -> bytes:
    o = indicator(description="x")
    text = json.dumps({"objects": [o]})
    o["description"] = "x" * (size - len(text) + 1)
    data = json.dumps({"objects": [o]}).encode()
    assert len(data) == size
    return data


def test_api_root_reports_its_limit(node, tiny):
    assert node.api_root("tiny").max_content_length == TINY


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_max_content_length_is_413(node, admin, tiny, chunked):
    """TAXII 2.1 §4.2.1, §5.4: a body over the API root's
    max_content_length is refused with 413, whether or not it declares
    its length."""
    data = _body_of_size(TINY + 1)
    oid = json.loads(data)["objects"][0]["id"]
    payload = iter([data[:1000], data[1000:]]) if chunked else data
    r = oneshot(admin, "POST", node.objects_url(tiny, "tiny"), data=payload, headers={"Content-Type": TAXII})
    if chunked:
        assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_taxii_error(r, 413)
    assert_taxii_error(admin.get(node.object_url(tiny, oid, "tiny")), 404)


def test_body_at_max_content_length_is_accepted(node, admin, tiny):
    data = _body_of_size(TINY)
    r = admin.post(node.objects_url(tiny, "tiny"), data=data, headers={"Content-Type": TAXII})
    assert r.status_code == 202, r.text
    assert r.json()["success_count"] == 1


@pytest.mark.parametrize(
    "query",
    ["added_after=yesterday", "limit=0", "limit=-5", "limit=ten", "match[version]=latest",
     "match[foo]=bar", "next=not-a-cursor-this-server-issued"],
)
def test_malformed_filter_is_400(node, admin, cid, query):
    """TAXII 2.1 §3.6: a request the server cannot understand is 400."""
    r = admin.get(node.objects_url(cid) + "?" + query)
    assert_taxii_error(r, 400)


@pytest.mark.parametrize(
    "path",
    [
        "collections/{cid}/objects/indicator--00000000-0000-4000-8000-000000000000/",
        "collections/{cid}/objects/indicator--00000000-0000-4000-8000-000000000000/versions/",
        "collections/{random}/objects/",
        "collections/{random}/manifest/",
        "collections/{random}/",
        "status/{random}/",
        "status/not-a-uuid/",
    ],
)
def test_unknown_resources_are_404(node, admin, cid, path):
    url = node.root_url() + path.format(cid=cid, random=uuid.uuid4())
    assert_taxii_error(admin.get(url), 404)


def test_post_to_unknown_collection_is_404(node, admin):
    r = oneshot(admin, "POST", node.objects_url(str(uuid.uuid4())), data=json.dumps({"objects": [indicator()]}),
                headers={"Content-Type": TAXII})
    assert_taxii_error(r, 404)


# --- objects refused inside an accepted request ------------------------------------------


def _without(o: dict, key: str) -> dict:
    o = dict(o)
    del o[key]
    return o


INVALID = [
    # (case id, the bad object, the word the failure message must name)
    ("malformed-id", lambda: indicator(id="indicator--not-a-uuid"), "id"),
    ("id-type-mismatch", lambda: indicator(id=f"malware--{uuid.uuid4()}"), "id"),
    ("id-without-type", lambda: indicator(id=str(uuid.uuid4())), "id"),
    ("impossible-date", lambda: indicator(created="2024-13-45T00:00:00Z", modified="2024-13-45T00:00:00Z"),
     "created"),
    ("timestamp-without-zone", lambda: indicator(created="2024-01-01T00:00:00", modified="2024-01-01T00:00:00"),
     "created"),
    ("modified-before-created",
     lambda: indicator(created="2024-05-01T00:00:00.000Z", modified="2024-04-01T00:00:00.000Z"), "modified"),
    ("missing-pattern", lambda: _without(indicator(), "pattern"), "pattern"),
    ("missing-spec-version", lambda: _without(indicator(), "spec_version"), "spec_version"),
    ("missing-type", lambda: _without(indicator(), "type"), "type"),
    ("missing-created", lambda: _without(indicator(), "created"), "created"),
    ("unclosed-pattern", lambda: indicator(pattern="[ipv4-addr:value = '1.2.3.4'"), "pattern"),
    ("pattern-without-value", lambda: indicator(pattern="[ipv4-addr:value = ]"), "pattern"),
    ("pattern-not-a-pattern", lambda: indicator(pattern="1.2.3.4"), "pattern"),
    ("malware-without-is-family", lambda: _without(malware(), "is_family"), "is_family"),
    ("property-of-wrong-type", lambda: indicator(indicator_types="malicious-activity"), "indicator_types"),
    ("relationship-without-target",
     lambda: {"type": "relationship", "spec_version": "2.1", "id": f"relationship--{uuid.uuid4()}",
              "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
              "relationship_type": "indicates", "source_ref": f"indicator--{uuid.uuid4()}"}, "target_ref"),
    ("not-an-object", lambda: 42, "object"),
    ("timestamp-less-precise-than-milliseconds", lambda: indicator(created="2024-01-01T00:00:00Z"), "created"),
]


@pytest.mark.parametrize("make, word", [(m, w) for _, m, w in INVALID], ids=[c for c, _, _ in INVALID])
def test_invalid_object_is_a_failure_and_not_stored(node, admin, cid, make, word):
    bad = make()
    good = indicator()
    st = post_envelope(admin, node.objects_url(cid), [bad, good], expect_failures=1)
    assert [s["id"] for s in st["successes"]] == [good["id"]]
    failure = st["failures"][0]
    claimed = bad.get("id", "") if isinstance(bad, dict) else ""
    assert failure["id"] == claimed
    message = failure.get("message", "")
    assert re.search(rf"\b{re.escape(word)}\b", message, re.I), f"failure message {message!r} does not name {word!r}"
    # The valid neighbour is stored; the invalid object is not.
    assert served_objects(get_json(admin, node.object_url(cid, good["id"]))[0]) == [good]
    if claimed and "--" in claimed:
        assert_taxii_error(admin.get(node.object_url(cid, claimed)), 404)
        env, _ = get_json(admin, node.objects_url(cid), **{"match[id]": claimed})
        assert served_objects(env) == []
    # The status resource, read back, says the same.
    assert get_json(admin, node.status_url(st["id"]))[0] == st


def test_version_conflict_is_a_failure_and_changes_nothing(node, admin, cid):
    """The same id and `modified` with different content is not a new
    version (STIX 2.1 §3.6): it is refused and the stored version stays."""
    original = indicator(name="original")
    post_envelope(admin, node.objects_url(cid), [original])
    impostor = dict(original, name="impostor")
    st = post_envelope(admin, node.objects_url(cid), [impostor], expect_failures=1)
    f = st["failures"][0]
    assert f["id"] == original["id"]
    assert f["version"] == original["modified"]
    assert "conflict" in f["message"].lower()
    env, _ = get_json(admin, node.object_url(cid, original["id"]), **{"match[version]": "all"})
    assert served_objects(env) == [original]


def test_version_conflict_within_one_envelope(node, admin, cid):
    first = indicator(name="first")
    second = dict(first, name="second")
    st = post_envelope(admin, node.objects_url(cid), [first, second], expect_failures=1)
    assert st["successes"][0]["id"] == first["id"]
    assert "conflict" in st["failures"][0]["message"].lower()
    env, _ = get_json(admin, node.object_url(cid, first["id"]), **{"match[version]": "all"})
    assert served_objects(env) == [first]


def test_many_failures_in_one_envelope_are_each_reported(node, admin, cid):
    bads = [indicator(pattern=f"[ipv4-addr:value = '10.0.0.{i}'") for i in range(20)]
    goods = [indicator(i) for i in range(20)]
    mixed = [o for pair in zip(bads, goods) for o in pair]
    st = post_envelope(admin, node.objects_url(cid), mixed, expect_failures=20)
    assert_status_shape(st)
    assert {f["id"] for f in st["failures"]} == {o["id"] for o in bads}
    assert {s["id"] for s in st["successes"]} == {o["id"] for o in goods}
