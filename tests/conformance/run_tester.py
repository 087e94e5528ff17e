"""Runs the scim2-tester conformance checks against a live rollcall and prints one line per
check, then `conformance: P passed, F failed, S skipped`.

Usage: BASE_URL=http://127.0.0.1:PORT/scim/v2 TOKEN=rct_... python run_tester.py

Exit status: 0 when no check failed or was skipped, 1 otherwise.
"""

import os
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# A DEVIATION is a SHOULD the server does not meet: it passes, but is printed for a look.
PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.DEVIATION}


def main() -> int:
    headers = {"Authorization": "Bearer " + os.environ["TOKEN"]}
    client = SyncSCIMClient(Client(base_url=os.environ["BASE_URL"], headers=headers, timeout=30))
    results = check_server(client)
    passed = failed = skipped = 0
    for result in results:
        reason = " ".join(str(result.reason or "").split())
        print(f"{result.status.name} {result.title} [{result.resource_type or '-'}] {reason[:300]}")
        if result.status in PASSED:
            passed += 1
        elif result.status == Status.SKIPPED:
            skipped += 1
        else:
            failed += 1
    print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and skipped == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
