"""A node started without --plain-http serves HTTPS (TAXII 2.1 §1.6.7)
with a self-signed certificate it generates on first start; standard
clients work against it (certificate checks off, as for any self-signed
certificate). Also the first start without a given admin password: the
generated one is printed once and works."""

import re
import socket
import ssl

import pytest
import requests

from support import Node, get_json, indicator, served_objects


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("tls") / "data", tls=True, admin_password=None).start()
    m = re.search(r"^\s*admin password: (\S+)$", "\n".join(n.first_start_output), re.M)
    assert m, n.first_start_output
    n.admin_password = m.group(1)
    yield n
    n.close()


def test_first_start_generates_a_certificate_and_a_private_key_file(tls_node):
    tls_dir = tls_node.dir / "tls"
    files = sorted(p.name for p in tls_dir.iterdir())
    assert files, "no TLS files generated"
    pems = [p for p in tls_dir.iterdir() if "BEGIN CERTIFICATE" in p.read_text()]
    keys = [p for p in tls_dir.iterdir() if "PRIVATE KEY" in p.read_text()]
    assert pems and keys, files
    for k in keys:
        assert k.stat().st_mode & 0o077 == 0, f"{k.name} is readable by others"
    assert (tls_node.dir / "keys/node.key").stat().st_mode & 0o777 == 0o600


def test_the_server_speaks_tls_with_its_certificate(tls_node):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", tls_node.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            der = tls.getpeercert(binary_form=True)
    served = ssl.DER_cert_to_PEM_cert(der).strip()
    on_disk = [p.read_text().strip() for p in (tls_node.dir / "tls").iterdir() if "BEGIN CERTIFICATE" in p.read_text()]
    assert any(served.splitlines()[1:-1] == pem.splitlines()[1:-1] for pem in on_disk)


def test_oasis_client_over_https(tls_node):
    server = tls_node.server()
    assert server.default.url == f"https://127.0.0.1:{tls_node.port}/anyam/"
    # Endpoints the client derives from `server` open sessions of their own
    # that honour REQUESTS_CA_BUNDLE over verify=False; build them directly.
    root = tls_node.api_root()
    assert "default" in [c.title for c in root.collections]
    coll = tls_node.collection(tls_node.default_collection)
    o = indicator()
    status = coll.add_objects({"objects": [o]})
    assert status.success_count == 1
    assert served_objects(coll.get_object(o["id"])) == [o]


def test_certificate_checks_reject_the_self_signed_certificate(tls_node):
    s = tls_node.session()
    s.verify = True
    with pytest.raises(requests.exceptions.SSLError):
        s.get(tls_node.discovery_url)


def test_plain_http_to_the_tls_port_gets_no_taxii_answer(tls_node):
    try:
        r = tls_node.session().get(f"http://127.0.0.1:{tls_node.port}/taxii2/")
    except requests.exceptions.ConnectionError:
        return
    assert r.status_code != 200


def test_generated_admin_password_works(tls_node):
    body, _ = get_json(tls_node.session(), tls_node.discovery_url)
    assert body["api_roots"]
