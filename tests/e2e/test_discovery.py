"""Discovery, API roots and collections (TAXII 2.1 §4.1, §4.2, §5.1, §5.2)
through the OASIS client, and the HTTP details (media types, content
negotiation, error resources) through raw requests."""

import uuid

import pytest
import requests

from support import DEFAULT_ROOT, STIX, TAXII, assert_taxii_error, assert_taxii_media, fresh_source, get_json


def test_first_start_created_the_node(node):
    out = "\n".join(node.first_start_output)
    assert f"Anyam node created in {node.dir}" in out
    assert "collection:     default (" in out
    for rel in ("anyam.toml", "anyam.db", "keys/node.key"):
        assert (node.dir / rel).is_file(), rel
    assert (node.dir / "keys/node.key").stat().st_mode & 0o777 == 0o600


def test_discovery_through_the_client(node):
    server = node.server()
    assert server.title
    assert server.default is not None
    assert server.default.url == node.root_url()
    urls = [r.url for r in server.api_roots]
    assert node.root_url() in urls
    # Every advertised API root is an absolute URL that answers (§4.1.1).
    for root in server.api_roots:
        assert root.url.startswith(node.base + "/")
        assert TAXII in root.versions


def test_api_root_information(node):
    root = node.api_root()
    assert root.title
    assert root.versions == [TAXII]
    assert isinstance(root.max_content_length, int) and root.max_content_length > 0


def test_default_collection_is_listed(node, admin):
    root = node.api_root()
    default = [c for c in root.collections if c.title == "default"]
    assert len(default) == 1
    c = default[0]
    assert c.id == node.default_collection
    assert c.can_read and c.can_write
    assert c.alias == "default"
    assert STIX in c.media_types
    body, _ = get_json(admin, node.collection_url(c.id))
    assert body["id"] == c.id and body["title"] == "default" and body["alias"] == "default"


def test_collection_by_alias(node, admin):
    """The brief's contract: `{collection}` in a URL is the id or the alias."""
    by_id, _ = get_json(admin, node.collection_url(node.default_collection))
    by_alias, _ = get_json(admin, node.collection_url("default"))
    assert by_alias == by_id


def test_new_collection_appears_at_once(node):
    cid = node.add_collection("appears-at-once", alias="appears-at-once")
    listed = {c.id: c for c in node.api_root().collections}
    assert cid in listed
    assert listed[cid].alias == "appears-at-once"
    assert listed[cid].can_read and listed[cid].can_write


def test_collection_with_a_chosen_id(node, admin):
    chosen = str(uuid.uuid4())
    assert node.add_collection("chosen-id", id=chosen) == chosen
    body, _ = get_json(admin, node.collection_url(chosen))
    assert body["id"] == chosen and body["title"] == "chosen-id"


@pytest.mark.parametrize("path", ["taxii2/", "anyam/", "anyam/collections/", "anyam/collections/{default}/",
                                  "anyam/collections/{default}/objects/", "anyam/collections/{default}/manifest/"])
def test_every_endpoint_answers_with_the_taxii_media_type(node, admin, path):
    _, r = get_json(admin, f"{node.base}/{path.format(default=node.default_collection)}")
    assert_taxii_media(r)


@pytest.mark.parametrize(
    "accept, status",
    [
        (TAXII, 200),
        ("application/taxii+json", 200),
        ('application/taxii+json; version="2.1"', 200),
        ("text/html, */*;q=0.1", 200),
        ("application/json", 406),
        ("application/taxii+json;version=2.0", 406),
        ("application/stix+json;version=2.1", 406),
        ("application/xml", 406),
    ],
)
def test_content_negotiation(node, admin, accept, status):
    """TAXII 2.1 §1.6.8: a response the client does not accept is 406."""
    for path in ("taxii2/", f"{DEFAULT_ROOT}/collections/{node.default_collection}/objects/"):
        r = admin.get(f"{node.base}/{path}", headers={"Accept": accept})
        if status == 200:
            assert r.status_code == 200, (accept, r.status_code, r.text)
            assert_taxii_media(r)
        else:
            assert_taxii_error(r, status)


def test_missing_credentials_are_401_with_a_challenge(node):
    s = node.session(user=None, source=fresh_source())
    for path in ("taxii2/", "anyam/", "anyam/collections/", f"anyam/collections/{node.default_collection}/objects/"):
        r = s.get(f"{node.base}/{path}")
        assert_taxii_error(r, 401)
        challenge = r.headers.get("WWW-Authenticate", "")
        assert "Basic" in challenge or "Bearer" in challenge, challenge


@pytest.mark.parametrize("path", ["nosuchroot/", "nosuchroot/collections/", "anyam/collections/no-such-collection/",
                                  "anyam/collections/00000000-0000-4000-8000-000000000000/objects/", "no/such/path"])
def test_unknown_resources_are_404(node, admin, path):
    assert_taxii_error(admin.get(f"{node.base}/{path}"), 404)


@pytest.mark.parametrize("method, path", [("POST", "taxii2/"), ("PUT", "anyam/collections/{default}/objects/"),
                                          ("DELETE", "anyam/collections/"), ("PATCH", "anyam/")])
def test_wrong_method_is_405(node, admin, method, path):
    url = f"{node.base}/{path.format(default=node.default_collection)}"
    r = admin.request(method, url, headers={"Content-Type": TAXII}, data="{}")
    assert_taxii_error(r, 405)
    # RFC 9110 §15.5.6: a 405 response carries the methods the resource allows.
    assert "GET" in r.headers.get("Allow", ""), dict(r.headers)


def test_http_basic_and_bearer_both_work(node):
    _, secret = node.create_token("admin", "--label", "discovery")
    for s in (node.session(), node.session(token=secret)):
        body, _ = get_json(s, node.discovery_url)
        assert body["api_roots"] == [node.root_url()] or node.root_url() in body["api_roots"]
    server = node.server(token=secret)
    assert server.default.url == node.root_url()


def test_client_with_wrong_credentials_cannot_discover(node):
    # An unknown user from an address of its own: no other test is throttled.
    with pytest.raises(requests.HTTPError) as e:
        node.server(user="nobody-discovery", password="wrong", source=fresh_source()).refresh()
    assert e.value.response.status_code == 401
