"""Login throttling: five failures within five minutes, per user name and
per client address, make the node answer 429 with Retry-After (RFC 6585
§4), even to correct credentials, until the lockout passes. Runs on a
node of its own; each scenario speaks from loopback addresses of its own."""

import time

import pytest

from support import Node, assert_taxii_error, fresh_source, get_json


@pytest.fixture(scope="module")
def throttled_node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("throttle") / "data").start()
    yield n
    n.close()


def assert_429(r) -> int:
    assert_taxii_error(r, 429)
    retry = r.headers.get("Retry-After")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, dict(r.headers)
    return int(retry)


def test_failures_from_one_address_lock_that_address_only(throttled_node):
    n = throttled_node
    a = fresh_source()
    for i in range(5):
        r = n.session(f"nobody-{i}", "wrong", source=a).get(n.discovery_url)
        assert_taxii_error(r, 401)
    # Even the right credentials are refused from that address for a while…
    retry = assert_429(n.session(source=a).get(n.discovery_url))
    # …while another address is served.
    get_json(n.session(source=fresh_source()), n.discovery_url)
    # And the lockout ends.
    time.sleep(retry + 0.3)
    get_json(n.session(source=a), n.discovery_url)


def test_failures_for_one_user_lock_that_user_from_every_address(throttled_node):
    n = throttled_node
    n.add_user("target", "host", "target password")
    for _ in range(5):
        r = n.session("target", "wrong password", source=fresh_source()).get(n.discovery_url)
        assert_taxii_error(r, 401)
    fresh = fresh_source()
    assert_429(n.session("target", "target password", source=fresh).get(n.discovery_url))
    # Other users are not affected, from that very address.
    get_json(n.session(source=fresh), n.discovery_url)


def test_failed_tokens_lock_the_address(throttled_node):
    n = throttled_node
    _, secret = n.create_token("admin")
    c = fresh_source()
    for i in range(5):
        assert_taxii_error(n.session(token=f"anyam_guess{i}", source=c).get(n.discovery_url), 401)
    assert_429(n.session(token=secret, source=c).get(n.discovery_url))
    get_json(n.session(token=secret, source=fresh_source()), n.discovery_url)
