"""moto's server (the same as the `moto_server` command), with DynamoDB's
writes made atomic with respect to each other.

moto 5.2.5 runs requests on threads, and its TransactWriteItems snapshots
whole tables, applies the operations one by one, and on a failed condition
restores the snapshot, without a lock. A transaction running meanwhile can
interleave with it or be rolled back by it: under load, two creates both
passed the per-tenant webhook limit (tests/api.rs,
concurrent_creates_never_exceed_the_limit). Real DynamoDB serializes these;
one lock around moto's write operations does the same here.

Its Query on a table's own key also lists every item of the table and keeps
those with the asked partition key: each query costs as much as a scan, so a
load run slows down as the table grows (35 pairs/s at the start of a
10,000-event proof, under 10 after 8,000). Here such a query starts from the
partition's own items, which moto already keeps apart (`Table.items[hash]`);
moto's own code still filters, sorts, pages and projects them, so the answer
is the same. Queries on an index are left as they are.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main

_WRITES = threading.RLock()
# The partition a Query on this thread is reading: (table, hash key).
_QUERYING = threading.local()


def _serialized(method):
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _WRITES:
            return method(self, *args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

_table_query = Table.query
_table_all_items = Table.all_items


def _all_items(self):
    scope = getattr(_QUERYING, "partition", None)
    if scope is not None and scope[0] is self:
        return list(self.items.get(scope[1], {}).values())
    return _table_all_items(self)


def _query(self, hash_key, *args, **kwargs):
    # Table.query(hash_key, range_comparison, range_objs, limit,
    # exclusive_start_key, scan_index_forward, projection_expressions,
    # index_name, ...), called positionally by DynamoDBBackend.query.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None or self.range_key_attr is None:
        return _table_query(self, hash_key, *args, **kwargs)
    _QUERYING.partition = (self, hash_key)
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        _QUERYING.partition = None


Table.all_items = _all_items
Table.query = _query

if __name__ == "__main__":
    sys.exit(main())
