"""Never lose what was acknowledged: a 202 with successes means the objects
and the status resource survive SIGKILL of the node right after."""

import threading

import requests

from support import fresh_source, get_json, indicator, post_envelope, served_objects


def all_objects(s: requests.Session, node, cid: str) -> dict[str, dict]:
    """Every object of a collection (latest versions), paging with `next`."""
    out, nxt = {}, None
    while True:
        env, _ = get_json(s, node.objects_url(cid), limit=1000, **({"next": nxt} if nxt else {}))
        for o in served_objects(env):
            assert o["id"] not in out
            out[o["id"]] = o
        if not env["more"]:
            return out
        nxt = env["next"]


def assert_all_acknowledged_present(node, cid: str, acked: list[tuple[dict, list[dict]]]) -> dict[str, dict]:
    s = node.session()
    stored = all_objects(s, node, cid)
    for status, objs in acked:
        for o in objs:
            assert stored.get(o["id"]) == o, f"acknowledged object {o['id']} lost (status {status['id']})"
        body, _ = get_json(s, node.status_url(status["id"]))
        assert body == status, "the status resource changed or was lost across the restart"
    return stored


def test_acknowledged_posts_survive_sigkill(make_node):
    n = make_node("sigkill").start()
    cid = n.default_collection
    s = n.session()
    acked = []
    for round_ in range(10):
        objs = [indicator(round_ * 100 + i) for i in range(50)]
        acked.append((post_envelope(s, n.objects_url(cid), objs), objs))
    n.kill()
    n.start()
    stored = assert_all_acknowledged_present(n, cid, acked)
    assert len(stored) == 500


def test_sigkill_during_a_stream_of_posts(make_node):
    """Kill the node while a client posts as fast as it can: every
    acknowledged envelope is complete after restart, and the envelope in
    flight is either wholly stored or not at all."""
    n = make_node("stream").start()
    cid = n.default_collection
    s = n.session()
    acked, in_flight, errors, stop = [], [], [], threading.Event()
    enough = threading.Event()

    def writer():
        k = 0
        while not stop.is_set():
            objs = [indicator(k * 1000 + i) for i in range(40)]
            in_flight[:] = objs
            k += 1
            try:
                st = post_envelope(s, n.objects_url(cid), objs)
            except (requests.ConnectionError, requests.Timeout):
                return
            except AssertionError as e:  # reported from the main thread
                errors.append(e)
                return
            acked.append((st, objs))
            in_flight.clear()
            if len(acked) >= 15:
                enough.set()

    t = threading.Thread(target=writer)
    t.start()
    assert enough.wait(60), f"the writer made no progress: {errors}"
    n.kill()
    stop.set()
    t.join(60)
    assert not t.is_alive()
    assert not errors, errors
    n.start()
    stored = assert_all_acknowledged_present(n, cid, acked)
    if in_flight:
        present = [o["id"] in stored for o in in_flight]
        assert all(present) or not any(present), "an envelope was stored in part"


def test_graceful_stop_and_restart_keep_the_node(make_node):
    n = make_node("restart").start()
    original_password = n.admin_password
    cid = n.add_collection("kept", alias="kept")
    o = indicator()
    post_envelope(n.session(), n.objects_url(cid), [o])
    assert n.stop() == 0, "SIGTERM should stop the node cleanly"
    # A later start does not create the node again, and ignores a new
    # admin password from the environment.
    n.admin_password = "not-the-password"
    n.start()
    assert not any("created" in line for line in n.output), n.output
    s = n.session(password=original_password)
    env, _ = get_json(s, n.object_url(cid, o["id"]))
    assert served_objects(env) == [o]
    r = n.session(password="not-the-password", source=fresh_source()).get(n.discovery_url)
    assert r.status_code == 401
