"""Persistent connections after a refused POST.

Clients such as the OASIS `taxii2-client` keep one `requests` session,
hence one keep-alive connection, for many requests. When the node refuses
a POST before reading its body (401, 403, 404, 406, 413, 415), the
connection must remain usable for the next request, or the response must
announce `Connection: close` (RFC 9112 §9.6) so the client opens a new one.
Closing silently makes the client's next request fail with "connection
aborted"."""

import http.client
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from support import TAXII, fresh_source, get_json, indicator

BIG = 1_000_000


def big_envelope(size: int = BIG) -> bytes:
    o = indicator(description="x" * size)
    return json.dumps({"objects": [o]}).encode()


@pytest.fixture(scope="module")
def setup(node):
    node.add_org("conn-readers")
    cid = node.add_collection("conn-collection", grants={"host": "rw", "conn-readers": "r"})
    node.add_user("conn-reader", "conn-readers")
    _, reader_token = node.create_token("conn-reader")
    node.cli("api-root", "add", "conntiny", "--max-content-length", 4096)
    tiny = node.add_collection("conn-tiny", api_root="conntiny")
    return {"cid": cid, "reader": reader_token, "tiny": tiny}


# (case, expected status, who posts, where to, Content-Type, Accept)
CASES = [
    ("403-read-only", 403, "reader", "collection", TAXII, TAXII),
    ("404-unknown-collection", 404, "admin", "unknown", TAXII, TAXII),
    ("406-bad-accept", 406, "admin", "collection", TAXII, "application/json"),
    ("413-too-large", 413, "admin", "tiny", TAXII, TAXII),
    ("415-media-type", 415, "admin", "collection", "application/json", TAXII),
    ("401-unknown-user", 401, "nobody", "collection", TAXII, TAXII),
]


def _session(node, setup, who):
    return {
        "admin": lambda: node.session(),
        "reader": lambda: node.session(token=setup["reader"]),
        "nobody": lambda: node.session("conn-nobody", "x", source=fresh_source()),
    }[who]()


def _url(node, setup, where):
    return {
        "collection": lambda: node.objects_url(setup["cid"]),
        "unknown": lambda: node.objects_url(str(uuid.uuid4())),
        "tiny": lambda: node.objects_url(setup["tiny"], "conntiny"),
    }[where]()


def _auth_header(session) -> dict:
    """The Authorization header a `requests` session would send."""
    prepared = session.prepare_request(requests.Request("GET", "http://127.0.0.1/"))
    return {k: v for k, v in prepared.headers.items() if k == "Authorization"}


@pytest.mark.parametrize("status, who, where, content_type, accept", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_connection_is_usable_after_a_refused_post(node, setup, status, who, where, content_type, accept):
    """Drive one connection by hand (http.client) so the outcome does not
    depend on timing: after the refusal, either the response said
    `Connection: close`, or the same connection serves the next request."""
    auth = _auth_header(_session(node, setup, who))
    source = fresh_source()
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30, source_address=(source, 0))
    try:
        headers = {**auth, "Content-Type": content_type, "Accept": accept}
        path = urlsplit(_url(node, setup, where)).path
        try:
            conn.request("POST", path, body=big_envelope(), headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # The node answered and closed while the client was still
            # sending the body it will not read. The answer is usually still
            # readable; when the kernel dropped it on the reset, what can be
            # checked is that the node serves a new connection.
            try:
                r = conn.getresponse()
            except (ConnectionError, http.client.HTTPException):
                fresh = _session(node, setup, "admin")
                assert fresh.get(node.discovery_url).status_code == 200
                return
            body = json.loads(r.read())
            assert r.status == status, body
            assert (r.getheader("Connection") or "").lower() == "close", r.getheaders()
            return
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == status, body
        assert str(body["http_status"]) == str(status)
        if (r.getheader("Connection") or "").lower() == "close":
            return
        time.sleep(0.3)
        try:
            conn.request("GET", "/taxii2/", headers={**auth, "Accept": TAXII})
            follow = conn.getresponse()
            follow.read()
        except (ConnectionError, http.client.HTTPException) as e:
            pytest.fail(f"after a {status} to a POST with an unread body the node closed the connection "
                        f"without `Connection: close`; the next request on it failed: {e!r}")
        assert follow.status == (401 if status == 401 else 200)
    finally:
        conn.close()


def test_many_requests_share_one_connection(node):
    """Plain keep-alive: a session's successive requests are served."""
    s = node.session()
    for _ in range(50):
        get_json(s, node.discovery_url)
