"""moto's server (the same as the `moto_server` command), with DynamoDB's
writes made atomic with respect to each other.

moto 5.2.5 runs requests on threads, and its TransactWriteItems snapshots
whole tables, applies the operations one by one, and on a failed condition
restores the snapshot, without a lock. A transaction running meanwhile can
interleave with it or be rolled back by it: under load, two creates both
passed the per-tenant webhook limit (tests/api.rs,
concurrent_creates_never_exceed_the_limit). Real DynamoDB serializes these;
one lock around moto's write operations does the same here.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITES = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _WRITES:
            return method(self, *args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
