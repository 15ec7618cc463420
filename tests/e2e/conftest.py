"""Fixtures: real `anyam` nodes in temporary directories, stopped (killed)
at teardown whatever the outcome of the test."""

from __future__ import annotations

import os
import uuid

import pytest

from support import Node, anyam_bin

_all_nodes: list[Node] = []


def pytest_sessionstart(session):
    binary = anyam_bin()
    if not os.access(binary, os.X_OK):
        raise pytest.UsageError(
            f"the anyam binary {binary} is missing; build it (cargo build --bin anyam) or set ANYAM_BIN"
        )


def pytest_sessionfinish(session, exitstatus):
    # A last guard: no server outlives the run, even after an interrupted test.
    for n in _all_nodes:
        n.close()


def _new_node(base, name: str, **kw) -> Node:
    n = Node(base / name / "data", **kw)
    _all_nodes.append(n)
    return n


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    """The node most tests share (plain HTTP). Tests isolate themselves by
    creating their own collections, organizations and users on it."""
    n = _new_node(tmp_path_factory.mktemp("shared"), "node").start()
    yield n
    n.close()


@pytest.fixture
def make_node(tmp_path):
    """A factory of nodes of the test's own (for restarts, kills, throttling)."""
    made: list[Node] = []

    def make(name: str = "own", **kw) -> Node:
        n = _new_node(tmp_path, name, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


@pytest.fixture
def admin(node):
    """An authenticated session (admin, HTTP Basic) on the shared node."""
    s = node.session()
    yield s
    s.close()


@pytest.fixture
def collection_id(node):
    """A new collection on the shared node that the host organization reads
    and writes."""
    return node.add_collection(f"e2e-{uuid.uuid4().hex[:8]}")
