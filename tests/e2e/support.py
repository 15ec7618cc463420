"""Helpers of the end-to-end suite: running real `anyam` nodes, talking to
them over HTTP, building STIX content and checking what comes back.

Everything here drives the real binary on 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import re
import secrets
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import requests
import requests.adapters
import stix2validator
import urllib3
import zstandard
from taxii2client.v21 import ApiRoot, Collection, Server

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
DEFAULT_ROOT = "anyam"
REQUEST_TIMEOUT = 60
START_TIMEOUT = 60

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def anyam_bin() -> str:
    """The binary under test: `ANYAM_BIN`, else the workspace's debug build."""
    explicit = os.environ.get("ANYAM_BIN")
    if explicit:
        return explicit
    return str(Path(__file__).resolve().parents[2] / "target" / "debug" / "anyam")


# --- client addresses ------------------------------------------------------------
#
# The node throttles failed logins per client address. Tests that fail to
# authenticate on purpose each speak from their own loopback address
# (127.0.0.0/8 is all local on Linux), so that they cannot lock each other out.

_source_counter = itertools.count(2)


def fresh_source() -> str:
    """A loopback address no other test of this run uses."""
    n = next(_source_counter)
    return f"127.0.{n // 250}.{n % 250 + 2}"


class Adapter(requests.adapters.HTTPAdapter):
    """An adapter with a default timeout and, optionally, a source address."""

    def __init__(self, source: str | None = None, **kw):
        self._source = source
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        if self._source:
            kw["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kw)

    def send(self, request, **kw):
        if kw.get("timeout") is None:
            kw["timeout"] = REQUEST_TIMEOUT
        return super().send(request, **kw)


class Bearer(requests.auth.AuthBase):
    """`Authorization: Bearer <secret>` (the node's API tokens)."""

    def __init__(self, secret: str):
        self.secret = secret

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.secret}"
        return r


# --- validation of everything served ------------------------------------------------

_validated: set[str] = set()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def assert_stix_valid(objects: list[dict]) -> None:
    """Validate STIX objects (as one bundle) with the OASIS validator; each
    distinct object is validated once per run."""
    fresh = {}
    for o in objects:
        d = _digest(o)
        if d not in _validated:
            fresh[d] = o
    if not fresh:
        return
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(fresh.values())}
    result = stix2validator.validate_instance(bundle)
    assert result.is_valid, f"stix2-validator rejected served objects: {[str(e) for e in result.errors]}"
    _validated.update(fresh)


def is_validated(obj) -> bool:
    """Whether this exact object already passed the OASIS validator."""
    return _digest(obj) in _validated


def _validate_hook(resp: requests.Response, *args, **kw):
    """Response hook on every session of the suite: each successful GET whose
    body holds STIX objects must pass the OASIS validator."""
    if resp.request.method != "GET" or resp.status_code != 200:
        return
    if not resp.headers.get("Content-Type", "").startswith("application/taxii+json"):
        return
    try:
        body = resp.json()
    except ValueError:
        return
    objs = body.get("objects") if isinstance(body, dict) else None
    if not objs:
        return
    # Manifest records (TAXII 2.1 §3.8) carry date_added and media_type and
    # no `type`; anything else under `objects` is STIX and is validated.
    if all(isinstance(o, dict) and "date_added" in o and "media_type" in o and "type" not in o for o in objs):
        return
    assert_stix_valid(objs)


def prepare_session(s: requests.Session, source: str | None = None) -> requests.Session:
    # The environment must not change what the suite sends: with trust_env,
    # REQUESTS_CA_BUNDLE would override `verify=False`, and proxy settings
    # could route 127.0.0.1 elsewhere.
    s.trust_env = False
    adapter = Adapter(source=source)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.hooks["response"].append(_validate_hook)
    return s


# --- nodes --------------------------------------------------------------------------


class Node:
    """One `anyam serve` process on a data directory of its own."""

    LISTEN_RE = re.compile(r"anyam: listening on (https?)://([0-9.]+):(\d+)/taxii2/")

    def __init__(self, data_dir: Path, *, tls: bool = False, admin_password: str | None = "generate"):
        self.dir = Path(data_dir)
        self.tls = tls
        if admin_password == "generate":
            admin_password = "pw-" + secrets.token_urlsafe(12)
        self.admin_password = admin_password
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.first_start_output: list[str] = []
        self.output: list[str] = []
        self.default_collection: str | None = None
        self._log = None

    # lifecycle

    def start(self) -> "Node":
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        env = dict(os.environ)
        env.pop("ANYAM_DATA_DIR", None)
        if self.admin_password:
            env["ANYAM_ADMIN_PASSWORD"] = self.admin_password
        else:
            env.pop("ANYAM_ADMIN_PASSWORD", None)
        env.setdefault("ANYAM_LOG", "warn")
        args = [anyam_bin(), "serve", "--data-dir", str(self.dir), "--listen", "127.0.0.1:0"]
        if not self.tls:
            args.append("--plain-http")
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.dir.parent / f"{self.dir.name}.stderr.log", "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        lines: queue.Queue = queue.Queue()
        out = []

        def pump(stream):
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                self.kill()
                raise AssertionError(f"node did not report listening within {START_TIMEOUT}s: {out}; "
                                     f"stderr ends: {self.stderr_tail()!r}")
            if line is None:
                code = self.proc.wait()
                raise AssertionError(f"node exited with {code} before listening; stdout: {out}; "
                                     f"stderr ends: {self.stderr_tail()!r}")
            out.append(line.rstrip("\n"))
            m = self.LISTEN_RE.search(line)
            if m:
                assert m.group(1) == ("https" if self.tls else "http"), line
                self.port = int(m.group(3))
                break
        if not self.first_start_output:
            self.first_start_output = out
            m = re.search(r"collection:\s+default \(([0-9a-f-]{36})\)", "\n".join(out))
            self.default_collection = m.group(1) if m else None
        self.output = out
        return self

    def stderr_tail(self, limit: int = 4000) -> str:
        """The end of what the node wrote to stderr, for a failure message."""
        if self._log:
            self._log.flush()
            try:
                return Path(self._log.name).read_text(errors="replace")[-limit:]
            except OSError as e:
                return f"(stderr log unreadable: {e})"
        return ""

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM, then the exit code (SIGKILL after 30 seconds)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def restart(self, hard: bool = False) -> "Node":
        self.kill() if hard else self.stop()
        return self.start()

    def close(self) -> None:
        self.kill()
        if self._log:
            self._log.close()

    # administration through the CLI

    def cli(self, *args, input: str | None = None, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        full_env.pop("ANYAM_DATA_DIR", None)
        full_env.update(env or {})
        r = subprocess.run(
            [anyam_bin(), *map(str, args), "--data-dir", str(self.dir)],
            input=input,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert r.returncode == 0, f"anyam {' '.join(map(str, args))} exited {r.returncode}: {r.stdout}{r.stderr}"
        return r

    def add_org(self, name: str) -> str:
        self.cli("org", "add", name)
        return name

    def add_user(self, name: str, org: str, password: str | None = None) -> str:
        """Create a user; returns its password (given or generated)."""
        if password is None:
            r = self.cli("user", "add", name, "--org", org)
            m = re.search(r"^password: (\S+)$", r.stdout, re.M)
            assert m, r.stdout
            return m.group(1)
        self.cli("user", "add", name, "--org", org, "--password-env", "E2E_PW", env={"E2E_PW": password})
        return password

    def create_token(self, user: str, *extra) -> tuple[str, str]:
        """Create an API token; returns (id, secret)."""
        r = self.cli("token", "create", user, *extra)
        tid = re.search(r"^token id: (\S+)$", r.stdout, re.M)
        sec = re.search(r"^secret:\s+(\S+)$", r.stdout, re.M)
        assert tid and sec, r.stdout
        return tid.group(1), sec.group(1)

    def add_collection(self, title: str, *, alias: str | None = None, api_root: str | None = None,
                       id: str | None = None, grants: dict[str, str] | None = None) -> str:
        """Create a collection; `grants` maps organization to "r", "w" or "rw"
        (default: the host organization reads and writes)."""
        args = ["collection", "add", title]
        if alias:
            args += ["--alias", alias]
        if api_root:
            args += ["--api-root", api_root]
        if id:
            args += ["--id", id]
        cid = self.cli(*args).stdout.strip().splitlines()[-1].strip()
        uuid.UUID(cid)
        for org, rights in (grants if grants is not None else {"host": "rw"}).items():
            self.grant(org, cid, rights)
        return cid

    def grant(self, org: str, cid: str, rights: str) -> None:
        flags = (["--read"] if "r" in rights else []) + (["--write"] if "w" in rights else [])
        self.cli("grant", "set", org, cid, *flags)

    # URLs

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.base}/taxii2/"

    def root_url(self, root: str = DEFAULT_ROOT) -> str:
        return f"{self.base}/{root}/"

    def collection_url(self, cid: str, root: str = DEFAULT_ROOT) -> str:
        return f"{self.root_url(root)}collections/{cid}/"

    def objects_url(self, cid: str, root: str = DEFAULT_ROOT) -> str:
        return self.collection_url(cid, root) + "objects/"

    def object_url(self, cid: str, oid: str, root: str = DEFAULT_ROOT) -> str:
        return self.objects_url(cid, root) + f"{oid}/"

    def status_url(self, sid: str, root: str = DEFAULT_ROOT) -> str:
        return f"{self.root_url(root)}status/{sid}/"

    # clients

    def _auth(self, user, password, token):
        if token:
            return Bearer(token)
        if user is None:
            return None
        return (user, password if password is not None else self.admin_password)

    def session(self, user: str | None = "admin", password: str | None = None, token: str | None = None,
                source: str | None = None) -> requests.Session:
        """A `requests` session that accepts TAXII 2.1 and validates served STIX."""
        s = prepare_session(requests.Session(), source)
        s.verify = False
        s.auth = self._auth(user, password, token)
        s.headers["Accept"] = TAXII
        s.e2e_source = source
        return s

    def _taxii_kwargs(self, user, password, token):
        if token:
            return {"auth": Bearer(token), "verify": not self.tls}
        return {"user": user, "password": password if password is not None else self.admin_password,
                "verify": not self.tls}

    def _wrap(self, endpoint, source=None):
        prepare_session(endpoint._conn.session, source)
        return endpoint

    def server(self, user="admin", password=None, token=None, source=None) -> Server:
        return self._wrap(Server(self.discovery_url, **self._taxii_kwargs(user, password, token)), source)

    def api_root(self, root=DEFAULT_ROOT, user="admin", password=None, token=None, source=None) -> ApiRoot:
        return self._wrap(ApiRoot(self.root_url(root), **self._taxii_kwargs(user, password, token)), source)

    def collection(self, cid: str, root=DEFAULT_ROOT, user="admin", password=None, token=None,
                   source=None) -> Collection:
        return self._wrap(Collection(self.collection_url(cid, root), **self._taxii_kwargs(user, password, token)),
                          source)


# --- HTTP helpers -------------------------------------------------------------------


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def audit_leaf(stored: bytes) -> bytes:
    """An audit entry's leaf (canonical JSON) from its stored bytes: long
    entries are stored as one zstd frame of it."""
    if stored[:4] == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().decompress(stored)
    return stored


def audit_entries(con) -> list[dict]:
    """Every entry of an open audit database, oldest first."""
    return [json.loads(audit_leaf(leaf)) for (leaf,) in con.execute("SELECT leaf FROM entries ORDER BY seq")]


def post_envelope(s: requests.Session, url: str, objects, *, expect_failures: int | None = 0) -> dict:
    """POST an envelope; assert 202 with a complete status resource and
    (unless None) the given number of failures. Returns the status."""
    r = s.post(url, data=json.dumps({"objects": objects}), headers={"Content-Type": TAXII})
    assert r.status_code == 202, f"POST {url}: {r.status_code} {r.text[:500]}"
    assert_taxii_media(r)
    st = r.json()
    assert_status_shape(st)
    assert st["status"] == "complete"
    assert st["total_count"] == len(objects)
    if expect_failures is not None:
        assert st["failure_count"] == expect_failures, st.get("failures")
        assert st["success_count"] == len(objects) - expect_failures, st
    return st


def oneshot(s: requests.Session, method: str, url: str, **kw) -> requests.Response:
    """A request with the session's credentials on a connection of its own.

    For requests the node refuses before reading their body: such a
    connection may not be reusable, which `test_connections` checks on its
    own; other tests must not depend on it."""
    with prepare_session(requests.Session(), getattr(s, "e2e_source", None)) as one:
        one.auth, one.verify = s.auth, s.verify
        one.headers.update(s.headers)
        return one.request(method, url, **kw)


def assert_status_shape(st: dict) -> None:
    """TAXII 2.1 §4.3.1: the status resource's required properties."""
    for key in ("id", "status", "total_count", "success_count", "failure_count", "pending_count"):
        assert key in st, f"status resource lacks {key}: {st}"
    assert st["total_count"] == st["success_count"] + st["failure_count"] + st["pending_count"], st
    assert len(st.get("successes", [])) == st["success_count"], st
    assert len(st.get("failures", [])) == st["failure_count"], st


def assert_taxii_media(r: requests.Response) -> None:
    ct = r.headers.get("Content-Type", "").replace(" ", "").lower()
    assert ct == TAXII, f"{r.request.method} {r.url}: Content-Type {ct!r}"


def assert_taxii_error(r: requests.Response, status: int) -> dict:
    """TAXII 2.1 §3.6.1: an error is an error-message resource (title,
    http_status) of the TAXII media type."""
    assert r.status_code == status, f"{r.request.method} {r.url}: expected {status}, got {r.status_code} {r.text[:300]}"
    assert_taxii_media(r)
    body = r.json()
    assert isinstance(body.get("title"), str) and body["title"], body
    assert str(body.get("http_status")) == str(status), body
    return body


def get_json(s: requests.Session, url: str, **params) -> tuple[dict, requests.Response]:
    r = s.get(url, params=params or None)
    assert r.status_code == 200, f"GET {r.url}: {r.status_code} {r.text[:300]}"
    assert_taxii_media(r)
    return r.json(), r


def served_objects(envelope: dict) -> list[dict]:
    return envelope.get("objects", [])


def by_id(objects: list[dict]) -> dict[str, dict]:
    return {o["id"]: o for o in objects}


# --- STIX content -------------------------------------------------------------------


# TLP 2.0 marking definitions (OASIS), by id.
TLP_CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
TLP_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
TLP_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def indicator(n: int | None = None, *, id: str | None = None, created: str = "2024-01-01T00:00:00.000Z",
              modified: str | None = None, **extra) -> dict:
    """A valid STIX 2.1 indicator as a plain dict (fast to make by the thousand)."""
    n = n if n is not None else secrets.randbelow(2**24)
    o = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": id or f"indicator--{uuid.uuid4()}",
        "created": created,
        "modified": modified or created,
        "name": f"bad address {n}",
        "description": "End-to-end test indicator.",
        "indicator_types": ["malicious-activity"],
        "pattern": f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
    }
    o.update(extra)
    return o


def malware(n: int = 0, **extra) -> dict:
    o = {
        "type": "malware",
        "spec_version": "2.1",
        "id": f"malware--{uuid.uuid4()}",
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "name": f"sample malware {n}",
        "description": "End-to-end test malware.",
        "is_family": False,
    }
    o.update(extra)
    return o
