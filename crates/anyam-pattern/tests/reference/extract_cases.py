"""Extract every pattern case of the OASIS reference packages' own test suites.

Runs the test suites shipped inside stix2-matcher and stix2-patterns with
pytest, with the packages' public entry points (``match`` and ``validate``)
wrapped so that every call is recorded together with the reference's own
verdict. Tests of the packages' internal Python APIs make no such call and
so contribute nothing. Writes one JSON object per line to stdout:

  {"id": ..., "kind": "match", "pattern": ..., "observations": [...],
   "stix_version": "2.1", "expected": "match" | "nomatch" | "error"}
  {"id": ..., "kind": "validate", "pattern": ..., "stix_version": "2.0",
   "expected": "valid" | "invalid"}
"""

import copy
import json
import os
import sys

import pytest

import stix2matcher
import stix2matcher.matcher as matcher_mod
import stix2patterns
import stix2patterns.validator as validator_mod

RECORDS = []
CURRENT = {"id": None}

_real_match = matcher_mod.match
_real_validate = validator_mod.validate


def _recording_match(pattern, observed_data_sdos, verbose=False, stix_version=stix2matcher.DEFAULT_VERSION):
    observations = copy.deepcopy(observed_data_sdos)
    try:
        result = _real_match(pattern, observed_data_sdos, verbose, stix_version)
    except Exception:
        expected = "error"
        RECORDS.append(_record("match", pattern, stix_version, expected, observations))
        raise
    RECORDS.append(_record("match", pattern, stix_version, "match" if result else "nomatch", observations))
    return result


def _recording_validate(user_input, stix_version=stix2patterns.DEFAULT_VERSION, ret_errs=False, print_errs=False):
    try:
        passed, errs = _real_validate(user_input, stix_version, ret_errs=True)
    except Exception:
        RECORDS.append(_record("validate", user_input, stix_version, "crash"))
        raise
    RECORDS.append(_record("validate", user_input, stix_version, "valid" if passed else "invalid"))
    if ret_errs:
        return passed, errs
    return passed


def _record(kind, pattern, stix_version, expected, observations=None):
    rec = {
        "id": CURRENT["id"],
        "kind": kind,
        "pattern": pattern,
        "stix_version": stix_version,
        "expected": expected,
    }
    if observations is not None:
        rec["observations"] = observations
    return rec


matcher_mod.match = _recording_match
validator_mod.validate = _recording_validate


class Recorder:
    def pytest_runtest_setup(self, item):
        CURRENT["id"] = item.nodeid


def main():
    roots = [
        os.path.join(os.path.dirname(stix2matcher.__file__), "test"),
        os.path.join(os.path.dirname(stix2patterns.__file__), "test"),
    ]
    # The suites' own pass/fail does not matter here, only the recorded calls.
    with open(os.devnull, "w") as devnull:
        saved = sys.stdout
        sys.stdout = devnull
        try:
            pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *roots], plugins=[Recorder()])
        finally:
            sys.stdout = saved
    for rec in RECORDS:
        print(json.dumps(rec, sort_keys=True))


if __name__ == "__main__":
    main()
