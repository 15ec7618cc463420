"""Paging through thousands of objects (TAXII 2.1 §3.4.1 limit/next,
§3.4.2 added_after, §3.3.1 X-TAXII-Date-Added headers): no gap, no
duplicate, whichever way the client pages."""

import threading

import pytest
from taxii2client.v21 import as_pages

from support import get_json, indicator, malware, post_envelope, served_objects

TOTAL = 3000
ENVELOPE = 1000


@pytest.fixture(scope="module")
def big(node):
    """3,000 objects (every third a malware) posted in envelopes of 1,000."""
    cid = node.add_collection("paging-module")
    s = node.session()
    objs = [malware(i) if i % 3 == 0 else indicator(i) for i in range(TOTAL)]
    for start in range(0, TOTAL, ENVELOPE):
        post_envelope(s, node.objects_url(cid), objs[start:start + ENVELOPE])
    return cid, objs


def _ids(objects) -> list[str]:
    return [o["id"] for o in objects]


def assert_exactly_once(seen: list[str], expected: set[str]) -> None:
    dupes = {i for i in seen if seen.count(i) > 1} if len(seen) != len(set(seen)) else set()
    assert not dupes, f"{len(dupes)} objects served twice"
    missing = expected - set(seen)
    assert not missing, f"{len(missing)} objects never served"
    assert set(seen) == expected


@pytest.mark.parametrize("per_request", [700, 1000])
def test_as_pages_over_objects(node, big, per_request):
    cid, objs = big
    coll = node.collection(cid)
    seen, pages = [], 0
    for envelope in as_pages(coll.get_objects, per_request=per_request):
        got = served_objects(envelope)
        assert len(got) <= per_request
        seen += _ids(got)
        pages += 1
    assert pages == -(-TOTAL // per_request)
    assert_exactly_once(seen, set(_ids(objs)))


def test_as_pages_over_the_manifest(node, big):
    cid, objs = big
    entries = []
    for page in as_pages(node.collection(cid).get_manifest, per_request=800):
        entries += page.get("objects", [])
    assert_exactly_once([e["id"] for e in entries], set(_ids(objs)))
    added = [e["date_added"] for e in entries]
    assert added == sorted(added) and len(set(added)) == len(added)


def test_next_paging_with_consistent_headers(node, admin, big):
    cid, objs = big
    url = node.objects_url(cid)
    man_url = node.collection_url(cid) + "manifest/"
    seen, last_of_previous, nxt = [], None, None
    while True:
        params = {"limit": 450, **({"next": nxt} if nxt else {})}
        env, r = get_json(admin, url, **params)
        man, _ = get_json(admin, man_url, **params)
        page = served_objects(env)
        assert _ids(page) == [e["id"] for e in man["objects"]], "objects and manifest page alike"
        first, last = r.headers["X-TAXII-Date-Added-First"], r.headers["X-TAXII-Date-Added-Last"]
        assert first == man["objects"][0]["date_added"] and last == man["objects"][-1]["date_added"]
        assert first <= last
        if last_of_previous is not None:
            assert first > last_of_previous, "pages overlap in date_added"
        last_of_previous = last
        seen += _ids(page)
        if not env["more"]:
            assert "next" not in env
            break
        assert env.get("next"), "more=true needs a next"
        nxt = env["next"]
    assert_exactly_once(seen, set(_ids(objs)))


def test_added_after_paging_from_the_last_header(node, admin, big):
    """The client pattern without `next`: ask again for what was added after
    the page's X-TAXII-Date-Added-Last."""
    cid, objs = big
    seen, after, rounds = [], None, 0
    while True:
        params = {"limit": 600, **({"added_after": after} if after else {})}
        env, r = get_json(admin, node.objects_url(cid), **params)
        page = served_objects(env)
        rounds += 1
        if not page:
            assert "X-TAXII-Date-Added-Last" not in r.headers
            break
        seen += _ids(page)
        after = r.headers["X-TAXII-Date-Added-Last"]
        assert rounds < 20
    assert rounds == TOTAL // 600 + 1
    assert_exactly_once(seen, set(_ids(objs)))


def test_paging_with_a_type_filter(node, admin, big):
    cid, objs = big
    coll = node.collection(cid)
    seen = []
    for env in as_pages(coll.get_objects, per_request=300, type="malware"):
        got = served_objects(env)
        assert {o["type"] for o in got} <= {"malware"}
        seen += _ids(got)
    assert_exactly_once(seen, {o["id"] for o in objs if o["type"] == "malware"})


def test_paging_while_objects_are_added(node, admin, big):
    """Objects added while a client pages do not make it skip or repeat
    what was there when it started (date_added only grows)."""
    cid = node.add_collection("paging-concurrent")
    base = [indicator(i) for i in range(1000)]
    post_envelope(admin, node.objects_url(cid), base)
    extra = [indicator(100_000 + i) for i in range(400)]
    writer_session = node.session()
    errors = []

    def write():
        try:
            for start in range(0, len(extra), 100):
                post_envelope(writer_session, node.objects_url(cid), extra[start:start + 100])
        except AssertionError as e:  # reported below, from the main thread
            errors.append(e)

    writer = threading.Thread(target=write)
    seen, nxt = [], None
    while True:
        env, _ = get_json(admin, node.objects_url(cid), limit=100, **({"next": nxt} if nxt else {}))
        seen += _ids(served_objects(env))
        if nxt is None:
            writer.start()
        if not env["more"]:
            break
        nxt = env["next"]
    writer.join()
    assert not errors, errors
    assert len(seen) == len(set(seen)), "an object was served twice"
    assert set(_ids(base)) <= set(seen), "an object present from the start was skipped"
    assert set(seen) <= set(_ids(base)) | set(_ids(extra))


def test_limit_above_the_server_maximum_is_lowered_not_refused(node, admin, big):
    """TAXII 2.1 §3.4.1: the server may return fewer than `limit`."""
    cid, _ = big
    env, _ = get_json(admin, node.objects_url(cid), limit=10**9)
    assert 0 < len(served_objects(env)) <= TOTAL
    if len(served_objects(env)) < TOTAL:
        assert env["more"] is True


def test_concurrent_writers_get_distinct_growing_date_added(node):
    """Four clients posting at once: every acknowledged object is stored once,
    and date_added orders all of them without ties."""
    cid = node.add_collection("paging-writers")
    batches = [[indicator(w * 10_000 + b * 100 + i) for i in range(20)] for w in range(4) for b in range(8)]
    errors = []

    def writer(my_batches):
        s = node.session()
        try:
            for batch in my_batches:
                post_envelope(s, node.objects_url(cid), batch)
        except AssertionError as e:  # reported below, from the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(batches[w::4],)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    entries = []
    for page in as_pages(node.collection(cid).get_manifest, per_request=250):
        entries += page.get("objects", [])
    assert_exactly_once([e["id"] for e in entries], {o["id"] for b in batches for o in b})
    added = [e["date_added"] for e in entries]
    assert added == sorted(added) and len(set(added)) == len(added)
