"""Federation under faults, between real nodes on 127.0.0.1: a page altered
in transit by a man in the middle (who holds the publisher's certificate
and key but not its signing intent), a receiver killed in the middle of a
sync, and a partner stopped and brought back.

Nothing is mocked: the nodes are real `anyam serve` processes; the only
stand-in is the tampering proxy of the first test, a small TLS server of
the test's own that presents the publisher's partner certificate and
forwards to the publisher's real partner listener with the receiver's
client certificate."""

import base64
import json
import re
import sqlite3
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import support
from support import TAXII, TLP_GREEN, post_envelope, served_objects
from test_federation import (agree, all_versions, federating, free_port, introduce, marked,
                             sync_status, wait_for)


def audit_entries(n) -> list[dict]:
    con = sqlite3.connect(f"file:{n.dir / 'audit.db'}?mode=ro", uri=True)
    try:
        return support.audit_entries(con)
    finally:
        con.close()


def status_of(receiver, partner) -> dict:
    return {p["partner"]: p for p in sync_status(receiver)}.get(partner, {})


def holds(node, cid, oid) -> bool:
    s = node.session()
    try:
        r = s.get(node.objects_url(cid), params={"match[id]": oid})
        if r.status_code == 404:
            return False
        assert r.status_code == 200, r.text
        return bool(served_objects(r.json()))
    finally:
        s.close()


def every_version(node, cid) -> list[dict]:
    """Every object version the admin reads in a collection, paging the
    TAXII way (limit, then `next` while `more`). For thousands of the
    suite's own indicators only counted here, the validating response hook
    is left off: validating them would take most of the test's time."""
    s = node.session()
    s.hooks["response"] = []
    out, nxt = [], None
    try:
        while True:
            params = {"match[version]": "all", "limit": 1000, **({"next": nxt} if nxt else {})}
            r = s.get(node.objects_url(cid), params=params)
            assert r.status_code == 200, r.text
            env = r.json()
            out.extend(served_objects(env))
            if not env.get("more"):
                return out
            nxt = env["next"]
            assert nxt, "more=true needs a next"
    finally:
        s.close()


def last_date_added(node, cid) -> str:
    """The publisher's `date_added` of the last object of a collection, as
    its manifest endpoint reports it."""
    s = node.session()
    last, nxt = None, None
    try:
        while True:
            params = {"limit": 1000, **({"next": nxt} if nxt else {})}
            r = s.get(node.collection_url(cid) + "manifest/", params=params)
            assert r.status_code == 200, r.text
            env = r.json()
            for rec in env.get("objects", []):
                if last is None or rec["date_added"] > last:
                    last = rec["date_added"]
            if not env.get("more"):
                return last
            nxt = env["next"]
    finally:
        s.close()


def pair(make_node, tmp_path, *, a_url=None, max_tlp="amber"):
    """A publishes its default collection to B under an agreement.
    `a_url`: the TAXII URL B is told to reach A at."""
    a, b = federating(make_node, "alpha"), federating(make_node, "bravo")
    if a_url is None:
        introduce([a, b], tmp_path)
    else:
        pa, pb = tmp_path / "alpha.desc.json", tmp_path / "bravo.desc.json"
        # A's descriptor (and so the agreement A drafts) names the given URL.
        a.cli("descriptor", "export", "--out", pa, "--taxii-url", a_url)
        assert json.loads(pa.read_text())["descriptor"]["document"]["taxii_url"] == a_url
        b.cli("partner", "import", pa, "--expect-node-id", a.node_id)
        b.cli("descriptor", "export", "--out", pb)
        a.cli("partner", "import", pb, "--expect-node-id", b.node_id)
    agree(a, b, tmp_path, "a-b", collections=[a.default_collection], max_tlp=max_tlp)
    return a, b


# --- 1. tampering in transit ------------------------------------------------------------


class TamperingProxy:
    """A TLS server presenting the publisher's partner certificate that
    forwards GETs to the publisher's partner listener with the receiver's
    client certificate; refuses the live stream (404) so that the receiver
    pulls; alters one object of each page while `tamper` is set."""

    def __init__(self, port: int, upstream_port: int, server_cert, client_cert):
        self.tamper = False
        self.altered: list[str] = []
        self.pages = 0
        self.upstream = f"https://127.0.0.1:{upstream_port}"
        self.session = requests.Session()
        self.session.trust_env = False  # never route 127.0.0.1 through an environment proxy
        self.session.verify = False
        self.session.cert = client_cert
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(*server_cert)
        ctx.verify_mode = ssl.CERT_NONE
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/anyam/stream/"):
                    return self.reply(404, {"Content-Type": TAXII},
                                      json.dumps({"title": "Not found", "http_status": "404"}).encode())
                try:
                    r = proxy.session.get(proxy.upstream + self.path, timeout=60, headers={
                        # The publisher builds its discovery URLs from Host:
                        # keep the receiver talking to the proxy.
                        "Host": self.headers.get("Host", ""),
                        "Accept": self.headers.get("Accept", TAXII),
                    })
                except requests.RequestException as e:
                    return self.reply(502, {"Content-Type": "text/plain"}, str(e).encode())
                body = r.content
                if r.status_code == 200 and "/objects/" in self.path:
                    env = r.json()
                    with proxy.lock:
                        proxy.pages += 1
                        if proxy.tamper and env.get("objects"):
                            victim = env["objects"][0]
                            victim["description"] = victim.get("description", "") + " tampered"
                            proxy.altered.append(victim["id"])
                            body = json.dumps(env).encode()
                headers = {k: v for k, v in r.headers.items()
                           if k.lower() in ("content-type", "x-taxii-date-added-first",
                                            "x-taxii-date-added-last")}
                self.reply(r.status_code, headers, body)

            def reply(self, status, headers, body):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request, client_address):
                # The handshake in the connection's own thread.
                try:
                    request = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                self.RequestHandlerClass(request, client_address, self)

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.session.close()


def tls_files(n, tmp_path):
    """A node's partner certificate and its node key, as files Python's ssl
    loads. The node writes its key as PKCS#8 v2 (RFC 5958: the seed and the
    public key), which some OpenSSL 3.0 releases refuse to read; the same
    key is written again as PKCS#8 v1 (the seed alone)."""
    text = (n.dir / "keys" / "node.key").read_text()
    der = base64.b64decode("".join(l for l in text.splitlines() if not l.startswith("-----")))
    head = bytes.fromhex("302e020100300506032b657004220420")  # v1 Ed25519 PrivateKeyInfo
    assert der[2:5] in (b"\x02\x01\x00", b"\x02\x01\x01") and der[5:16] == head[5:16], der[:16].hex()
    v1 = head + der[16:48]
    key = tmp_path / f"{n.dir.parent.name}.v1.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(v1).decode()
                   + "\n-----END PRIVATE KEY-----\n")
    return str(n.dir / "tls" / "partner-cert.pem"), str(key)


def ed25519_server_context_works(cert, key) -> str | None:
    """None if this Python's ssl serves TLS 1.3 with an Ed25519 key, else why not."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as e:
        return f"Python's ssl cannot load the node's Ed25519 certificate and key: {e}"
    return None


def test_page_altered_in_transit_is_rejected_whole_and_audited(make_node, tmp_path):
    proxy_port = free_port()
    a, b = pair(make_node, tmp_path, a_url=f"https://127.0.0.1:{proxy_port}/taxii2/")
    # The agreement carries, for A, the URL B is to reach it at: the proxy.
    ag = json.loads(a.cli("agreement", "in-force").stdout)["agreements"]
    a_party = [p for p in ag[0]["parties"] if p["node_id"] == a.node_id][0]
    assert a_party["taxii_url"] == f"https://127.0.0.1:{proxy_port}/taxii2/", a_party
    a.start()
    a_tls = tls_files(a, tmp_path)
    why = ed25519_server_context_works(*a_tls)
    if why:
        pytest.skip(why)
    # B's client certificate exists once B has run with its partner
    # listener: the proxy starts before B (B's first round must already go
    # through it), so B is started and stopped once first.
    b.start()
    b.stop()
    proxy = TamperingProxy(proxy_port, a.fed_port, a_tls, tls_files(b, tmp_path))
    try:
        proxy.tamper = True
        b.start()
        cid = a.default_collection
        objs = [marked(100 + i, TLP_GREEN, description=f"probe {i}") for i in range(2)]
        s = a.session()
        post_envelope(s, a.objects_url(cid), objs)
        s.close()

        # B pulls through the proxy (the stream is refused) and refuses the
        # altered page: counted, with the reason.
        st = wait_for(lambda: (lambda p: p if p.get("rejected_batches", 0) >= 1 else None)(
            status_of(b, a.node_id)), "B to reject an altered page", timeout=30)
        assert proxy.altered, "the proxy altered nothing"
        victim = proxy.altered[0]
        assert victim in {o["id"] for o in objs}
        err = st["last_error"] or ""
        assert "altered" in err and "digest" in err and victim in err, err

        # A few more rounds (every second): still nothing stored.
        time.sleep(4)
        assert all_versions(b, cid) == set()
        st = status_of(b, a.node_id)
        assert st["rejected_batches"] >= 2, st  # every round is refused again
        assert not st["cursors"] or all(c["added_after"] is None for c in st["cursors"]), st
        assert st["received"] == 0, st

        # The audit log: a rejection naming A, saying which object and why.
        rejections = [e for e in audit_entries(b) if e["kind"] == "rejection"]
        assert rejections, "no rejection in B's audit log"
        assert all(e.get("parties") == [a.node_id] for e in rejections), rejections
        text = json.dumps(rejections[0].get("details")) + rejections[0].get("why", "")
        assert victim in text and "altered" in text, rejections[0]
        assert not any(e["kind"] == "receipt" for e in audit_entries(b))

        # Tampering stops: the next round delivers both, exactly as posted.
        proxy.tamper = False
        want = {(o["id"], o["modified"]) for o in objs}
        wait_for(lambda: all_versions(b, cid) == want, "B to receive the untampered page", timeout=30)
        sb = b.session()
        r = sb.get(b.objects_url(cid), params={"match[version]": "all"})
        sb.close()
        got = {o["id"]: o for o in served_objects(r.json())}
        assert got == {o["id"]: o for o in objs}
        st = status_of(b, a.node_id)
        assert st["received"] == 2 and st["cursors"], st
        # All of it went through the proxy, by pull: the stream never came up.
        assert proxy.pages >= 3 and not st["stream_up"], (proxy.pages, st)
        assert any(e["kind"] == "receipt" and e.get("parties") == [a.node_id] for e in audit_entries(b))
    finally:
        proxy.close()


# --- 2. SIGKILL in the middle of a sync ----------------------------------------------------


def test_receiver_killed_mid_sync_resumes_without_loss_or_duplicate(make_node, tmp_path):
    a, b = pair(make_node, tmp_path)
    a.start()
    cid = a.default_collection
    objs = [marked(1000 + i, TLP_GREEN) for i in range(5000)]
    s = a.session()
    for i in range(0, len(objs), 1000):
        post_envelope(s, a.objects_url(cid), objs[i:i + 1000])
    s.close()
    first, last = objs[0]["id"], objs[-1]["id"]

    # Pages of 1,000 (the default is 5,000, which would be one page here).
    cfg = b.dir / "anyam.toml"
    text = re.sub(r"(?m)^page_size = \d+$", "page_size = 1000", cfg.read_text())
    assert "page_size = 1000" in text
    cfg.write_text(text)
    b.start()
    # Pages come in date_added order, 1,000 at a time: B holds the first
    # object once a page is stored, the last only at the end.
    deadline = time.monotonic() + 60
    while not holds(b, cid, first):  # polled quickly: the whole sync takes seconds
        assert time.monotonic() < deadline, "B stored no page within 60 s"
        time.sleep(0.02)
    partial = not holds(b, cid, last)
    b.kill()
    assert partial, "B finished syncing before it could be killed in the middle"
    def receipts():
        return [o["id"] for e in audit_entries(b) if e["kind"] == "receipt"
                and e.get("parties") == [a.node_id] for o in e.get("what", {}).get("objects", [])]

    before = receipts()
    assert 0 < len(before) < len(objs), len(before)

    b.start()
    want = {(o["id"], o["modified"]) for o in objs}
    wait_for(lambda: holds(b, cid, last), "B to catch up after the kill", timeout=60)
    got = every_version(b, cid)
    keys = [(o["id"], o["modified"]) for o in got]
    assert len(keys) == len(set(keys)), "duplicate versions after the restart"
    assert set(keys) == want
    assert len({o["id"] for o in got}) == 5000
    # Each object was stored (and its receipt audited) once, across the kill.
    after = receipts()
    assert len(after) == len(set(after)) == 5000
    assert after[:len(before)] == before

    a_last = last_date_added(a, cid)
    st = wait_for(lambda: (lambda p: p if p.get("cursors") and all(
        c["added_after"] == a_last for c in p["cursors"]) else None)(status_of(b, a.node_id)),
        "B's cursor to reach A's last date_added", timeout=30)
    assert [c["collection"] for c in st["cursors"]] == [cid], st
    assert st["rejected_batches"] == 0 and st["conflicts"] == 0, st


# --- 3. partner stopped and brought back -----------------------------------------------------


def test_partner_stopped_and_restarted_delivers_again_and_stream_recovers(make_node, tmp_path):
    a, b = pair(make_node, tmp_path)
    a.start()
    b.start()
    cid = a.default_collection
    wait_for(lambda: status_of(b, a.node_id).get("stream_up"), "B's live stream from A", timeout=30)

    a.stop()
    wait_for(lambda: not status_of(b, a.node_id).get("stream_up"), "B to see the stream down", timeout=30)
    a.start()
    objs = [marked(200 + i, TLP_GREEN) for i in range(10)]
    s = a.session()
    post_envelope(s, a.objects_url(cid), objs)
    s.close()
    want = {(o["id"], o["modified"]) for o in objs}
    wait_for(lambda: all_versions(b, cid) >= want, "B to receive the new objects", timeout=30)
    wait_for(lambda: status_of(b, a.node_id).get("stream_up"), "B's stream to come back", timeout=30)
    st = status_of(b, a.node_id)
    assert st["received"] >= 10 and st["rejected_batches"] == 0, st
