"""Authentication (HTTP Basic, Bearer tokens) and grants (TAXII 2.1 §5.2
can_read/can_write, §3.6 401/403/404). Changes made with the CLI take
effect on the running node at once.

Every request meant to fail authentication speaks from a loopback address
of its own, so that the node's login throttling never spills into other
tests."""

import json

import pytest
from taxii2client.exceptions import AccessError

from support import (
    TAXII,
    TLP_GREEN,
    assert_taxii_error,
    fresh_source,
    get_json,
    indicator,
    oneshot,
    post_envelope,
    served_objects,
)


def post(s, url, objs):
    return oneshot(s, "POST", url, data=json.dumps({"objects": objs}), headers={"Content-Type": TAXII})


def assert_401(r):
    assert_taxii_error(r, 401)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert "Basic" in challenge or "Bearer" in challenge, dict(r.headers)


@pytest.fixture(scope="module")
def world(node):
    """Collection `shared` (host: rw, partner: write only, reader: read only,
    outsider: nothing), one user and one token per organization, and one
    object in the collection."""
    for org in ("partner", "reader", "outsider"):
        node.add_org(org)
    cid = node.add_collection("grants-shared", grants={"host": "rw", "partner": "w", "reader": "r"})
    tokens = {}
    for org in ("partner", "reader", "outsider"):
        node.add_user(f"{org}-analyst", org)
        tokens[org] = node.create_token(f"{org}-analyst", "--label", "e2e")[1]
    # GREEN: every local organization with the read right may see it (unmarked
    # data would stay with the host organization).
    seed = indicator(1, object_marking_refs=[TLP_GREEN])
    st = post_envelope(node.session(), node.objects_url(cid), [seed])
    return {"cid": cid, "tokens": tokens, "seed": seed, "admin_status": st["id"]}


def as_org(node, world, org):
    return node.session(token=world["tokens"][org])


def listed(node, s) -> dict[str, dict]:
    body, _ = get_json(s, node.root_url() + "collections/")
    return {c["id"]: c for c in body.get("collections", [])}


def test_write_only_org_sees_the_collection_but_cannot_read(node, world):
    s, cid = as_org(node, world, "partner"), world["cid"]
    c = listed(node, s)[cid]
    assert c["can_read"] is False and c["can_write"] is True
    body, _ = get_json(s, node.collection_url(cid))
    assert body["can_read"] is False and body["can_write"] is True
    for url in (node.objects_url(cid), node.collection_url(cid) + "manifest/",
                node.object_url(cid, world["seed"]["id"]), node.object_url(cid, world["seed"]["id"]) + "versions/"):
        assert_taxii_error(s.get(url), 403)
    r = post(s, node.objects_url(cid), [indicator(2)])
    assert r.status_code == 202 and r.json()["success_count"] == 1
    # The OASIS client honours can_read too.
    with pytest.raises(AccessError):
        node.collection(cid, token=world["tokens"]["partner"]).get_objects()


def test_org_without_grant_sees_nothing(node, world):
    s, cid = as_org(node, world, "outsider"), world["cid"]
    assert cid not in listed(node, s)
    for url in (node.collection_url(cid), node.objects_url(cid), node.collection_url(cid) + "manifest/",
                node.object_url(cid, world["seed"]["id"])):
        assert_taxii_error(s.get(url), 404)
    assert_taxii_error(post(s, node.objects_url(cid), [indicator(3)]), 404)
    assert_taxii_error(oneshot(s, "DELETE", node.object_url(cid, world["seed"]["id"])), 404)
    # The seed object is still there.
    env, _ = get_json(node.session(), node.object_url(cid, world["seed"]["id"]))
    assert served_objects(env) == [world["seed"]]


def test_read_only_org_cannot_write(node, world):
    s, cid = as_org(node, world, "reader"), world["cid"]
    c = listed(node, s)[cid]
    assert c["can_read"] is True and c["can_write"] is False
    env, _ = get_json(s, node.object_url(cid, world["seed"]["id"]))
    assert served_objects(env) == [world["seed"]]
    o = indicator(4)
    assert_taxii_error(post(s, node.objects_url(cid), [o]), 403)
    assert_taxii_error(oneshot(s, "DELETE", node.object_url(cid, world["seed"]["id"])), 403)
    assert_taxii_error(node.session().get(node.object_url(cid, o["id"])), 404)


def test_status_is_visible_only_to_the_posting_organization(node, world):
    cid = world["cid"]
    partner = as_org(node, world, "partner")
    st = post_envelope(partner, node.objects_url(cid), [indicator(5)])
    body, _ = get_json(partner, node.status_url(st["id"]))
    assert body == st
    # Another user of the same organization sees it too.
    node.add_user("partner-second", "partner")
    other = node.session(token=node.create_token("partner-second")[1])
    assert get_json(other, node.status_url(st["id"]))[0] == st
    for org in ("reader", "outsider"):
        assert_taxii_error(as_org(node, world, org).get(node.status_url(st["id"])), 404)
    # And the host's status is not the partner's business.
    assert_taxii_error(partner.get(node.status_url(world["admin_status"])), 404)


def test_grant_changes_take_effect_at_once(node, world):
    cid = node.add_collection("grants-changing")
    s = as_org(node, world, "outsider")
    assert_taxii_error(s.get(node.objects_url(cid)), 404)
    node.grant("outsider", cid, "r")
    get_json(s, node.objects_url(cid))
    assert listed(node, s)[cid]["can_read"] is True
    node.grant("outsider", cid, "")
    assert_taxii_error(s.get(node.objects_url(cid)), 404)
    assert cid not in listed(node, s)


@pytest.mark.parametrize(
    "scope, can_read, can_write",
    [("full", True, True), ("read", True, False), ("write", False, True)],
)
def test_token_scopes(node, world, scope, can_read, can_write):
    cid = world["cid"]
    _, secret = node.create_token("admin", "--scope", scope, "--label", f"scope-{scope}")
    s = node.session(token=secret)
    c = listed(node, s)[cid]
    assert (c["can_read"], c["can_write"]) == (can_read, can_write)
    r = s.get(node.objects_url(cid))
    if can_read:
        assert r.status_code == 200
    else:
        assert_taxii_error(r, 403)
    r = post(s, node.objects_url(cid), [indicator(6)])
    if can_write:
        assert r.status_code == 202
    else:
        assert_taxii_error(r, 403)


def test_revoked_token_is_refused_at_once(node):
    tid, secret = node.create_token("admin", "--label", "to-revoke")
    s = node.session(token=secret, source=fresh_source())
    get_json(s, node.discovery_url)
    node.cli("token", "revoke", tid)
    assert_401(s.get(node.discovery_url))


def test_expired_token_is_refused(node):
    _, secret = node.create_token("admin", "--expires-in-days", "0")
    assert_401(node.session(token=secret, source=fresh_source()).get(node.discovery_url))


def test_token_with_a_future_expiry_works(node):
    _, secret = node.create_token("admin", "--expires-in-days", "30")
    get_json(node.session(token=secret), node.discovery_url)


def test_password_change_takes_effect_at_once(node):
    node.cli("user", "add", "changer", "--org", "host", "--password-stdin", input="first password\n")
    old = node.session("changer", "first password", source=fresh_source())
    get_json(old, node.discovery_url)
    node.cli("user", "passwd", "changer", "--password-env", "NEW_PW", env={"NEW_PW": "second password"})
    # The same session (and connection) that just succeeded is refused now.
    assert_401(old.get(node.discovery_url))
    get_json(node.session("changer", "second password"), node.discovery_url)


def test_disabled_user_and_its_tokens_are_refused(node):
    node.add_user("quitter", "host", "quitter password")
    _, secret = node.create_token("quitter")
    get_json(node.session(token=secret), node.discovery_url)
    node.cli("user", "disable", "quitter")
    source = fresh_source()
    assert_401(node.session(token=secret, source=source).get(node.discovery_url))
    assert_401(node.session("quitter", "quitter password", source=source).get(node.discovery_url))


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic !!!not-base64!!!", "Basic " + "YWRtaW4=", "Token abc", "Bearer ", "Bearer anyam_not-a-real-token",
     "Digest username=admin"],
    ids=["none", "bad-base64", "no-colon", "token-scheme", "empty-bearer", "unknown-bearer", "digest"],
)
def test_malformed_or_unknown_credentials_are_401(node, authorization):
    s = node.session(user=None, source=fresh_source())
    headers = {"Authorization": authorization} if authorization else {}
    assert_401(s.get(node.discovery_url, headers=headers))


def test_wrong_password_is_401(node):
    node.add_user("forgetful", "host", "right password")
    assert_401(node.session("forgetful", "wrong password", source=fresh_source()).get(node.discovery_url))
    get_json(node.session("forgetful", "right password"), node.discovery_url)


def test_bearer_token_through_the_oasis_client(node, world):
    coll = node.collection(world["cid"], token=world["tokens"]["reader"])
    assert served_objects(coll.get_object(world["seed"]["id"])) == [world["seed"]]
    assert coll.can_read and not coll.can_write
