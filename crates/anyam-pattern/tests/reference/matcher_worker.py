"""Answer match requests with the OASIS reference matcher (stix2-matcher).

Reads JSON lines {"pattern": ..., "observations": [...], "stix_version": ...}
from stdin and writes one line per request: match, nomatch or error.
"""

import json
import sys

from stix2matcher.matcher import match


def main():
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        try:
            verdict = "match" if match(req["pattern"], req["observations"], stix_version=req["stix_version"]) else "nomatch"
        except Exception:  # the reference's errors and crashes alike
            verdict = "error"
        out.write(verdict + "\n")
    out.flush()


if __name__ == "__main__":
    main()
