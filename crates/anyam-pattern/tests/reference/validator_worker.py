"""Answer validation requests with the OASIS reference validator (stix2-patterns).

Reads JSON lines {"pattern": ..., "stix_version": ...} from stdin and writes
one line per request: valid, invalid, or crash (the validator raised).
"""

import json
import sys

from stix2patterns.validator import run_validator


def main():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            verdict = "invalid" if run_validator(req["pattern"], req["stix_version"]) else "valid"
        except Exception:
            verdict = "crash"
        sys.stdout.write(verdict + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
