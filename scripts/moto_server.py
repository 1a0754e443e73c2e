"""moto's server (the same as the `moto_server` command), with DynamoDB's
writes made atomic with respect to each other, its queries made to cost what
they cost in DynamoDB, and SQS's DeleteMessage made safe to call concurrently.

moto 5.2.5's DeleteMessage rebuilds the queue's message list from the list
as it was when it started, without the lock that SendMessage takes: two
deletes at once (several receive loops) put back a deleted message or drop
one another loop has just received. A dropped message whose batch then fails
is never handed over again: a 10,000-event proof lost the 3 pairs of such
messages. Its ReceiveMessage, also without the lock, hands one message to two
loops at once several times a run. SQS never loses a message it accepted,
and duplicates are rare; here receives and deletes take the queue's lock.

moto 5.2.5 runs requests on threads, and its TransactWriteItems snapshots
whole tables, applies the operations one by one, and on a failed condition
restores the snapshot, without a lock. A transaction running meanwhile can
interleave with it or be rolled back by it: under load, two creates both
passed the per-tenant webhook limit (tests/api.rs,
concurrent_creates_never_exceed_the_limit). Real DynamoDB serializes these;
one lock around moto's write operations does the same here.

Its Query also lists every item of the table and keeps those with the asked
partition key: each query (and each page of one) costs as much as a scan, so
a load run slows down as the table grows (35 pairs/s at the start of a
10,000-event proof, under 10 after 8,000). Here a query starts from the
items that have the asked partition key instead: on the table's own key,
the partition moto already keeps apart (`Table.items[hash]`); on an index,
a map from the index's partition key to its items, built on the first query
after a write. moto's own code still matches the keys, filters, sorts, pages
and projects them, so the answer is the same.

Its SQS reads the clock through `datetime` (`utcnow()` minus the epoch, about
2 µs) for every message it looks at, and checks a received message's
retention by building the queue's whole attribute map, whose approximate
counts walk every message of the queue three times: each receive costs the
square of the queue's depth. At 40 events/s (tests' noisy-neighbour
benchmark) that put moto's SQS at 100 % CPU, with 80 % of it in those clock
reads. Here the clock is `time.time()` (the same seconds since the epoch)
and the retention check reads the queue's retention period itself: the same
answers, in time linear in the depth.

Its TransactWriteItems also deep-copies every table an item names, once per
item, before it starts (to roll back on a failed condition): a transaction of
10 copies on a table of a few thousand items took over half a second, and
grew with the table. DynamoDB's price for a transaction does not grow with
the table. Here every condition is checked first, against the items as they
are, and nothing is written unless all hold; the writes are then made in
order, each item's earlier state kept to undo them if one fails. The answers
are moto's: the same cancellation reasons, in order, for the same
transactions, and the same errors for two operations on one item, more than
100 items and an item naming two operations.

Every request also finds its service by listing moto's package directory
(`os.listdir` and an `isdir` per module, about 200 system calls) under a lock
all requests share, and writes an access-log line: about a quarter of the
server's CPU under load. Here the list is read once (it does not change
while the server runs) and only warnings and errors are logged.
"""

import copy
import functools
import logging
import sys
import threading
import time

from moto import backends
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.server import main
from moto.sqs.models import Message, Queue, SQSBackend

_WRITES = threading.RLock()
# Bumped after every write: an index map built before it is stale.
_generation = 0
# (table id, attribute) -> (table, generation, {value: [items]}).
_BY_ATTRIBUTE = {}
_BY_ATTRIBUTE_LOCK = threading.Lock()
# What a Query on this thread is reading: (table, None, hash key) for the
# table's own key, (table, attribute, value) for an index.
_QUERYING = threading.local()


def _serialized(method):
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        global _generation
        with _WRITES:
            try:
                return method(self, *args, **kwargs)
            finally:
                _generation += 1

    return locked


def _transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    # Each operation, its table and key, checked as moto checks them.
    operations, targets, errors = [], set(), []
    for item in transact_items:
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        original_item = None
        try:
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            if op_type == "Put":
                table = self.get_table(table_name)
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            target = (str(table_name), str(dict(sorted(key.items()))))
            if target in targets:
                raise MultipleTransactionsException()
            targets.add(target)
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = get_filter_expression(
                    condition,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                )
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            operations.append((op_type, op, table_name, key, current))
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:  # noqa: E722, as moto: any other failure is a reason
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    # Every condition holds: write, keeping what each item was to undo it
    # (a copy: an update changes moto's item in place).
    done = []
    for position, (op_type, op, table_name, key, current) in enumerate(operations):
        names = op.get("ExpressionAttributeNames")
        values = op.get("ExpressionAttributeValues")
        try:
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names,
                                 expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names,
                                 expression_attribute_values=values)
            else:
                continue
        except Exception as e:
            for table_name, key, before in reversed(done):
                if before is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, before.to_json()["Attributes"])
            # As moto: a validation error is the request's, any other a reason.
            if isinstance(e, MockValidationException):
                raise
            reasons = [(None, None, None)] * len(operations)
            reasons[position] = (type(e).__name__, str(e), None)
            raise TransactionCanceledException(reasons) from e
        done.append((table_name, key, copy.deepcopy(current)))


DynamoDBBackend.transact_write_items = _transact_write_items

for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

_table_query = Table.query
_table_all_items = Table.all_items


def _items_by(table, attribute):
    generation = _generation
    key = (id(table), attribute)
    with _BY_ATTRIBUTE_LOCK:
        cached = _BY_ATTRIBUTE.get(key)
        if cached is not None and cached[0] is table and cached[1] == generation:
            return cached[2]
        by_value = {}
        for item in _table_all_items(table):
            value = getattr(item, "attrs", {}).get(attribute)
            if value is None:
                continue
            try:
                by_value.setdefault(value, []).append(item)
            except TypeError:  # not a key type: never matches an index key
                continue
        _BY_ATTRIBUTE[key] = (table, generation, by_value)
        return by_value


def _all_items(self):
    scope = getattr(_QUERYING, "scope", None)
    if scope is None or scope[0] is not self:
        return _table_all_items(self)
    _, attribute, value = scope
    if attribute is None:
        return list(self.items.get(value, {}).values())
    return list(_items_by(self, attribute).get(value, ()))


def _query(self, hash_key, *args, **kwargs):
    # Table.query(hash_key, range_comparison, range_objs, limit,
    # exclusive_start_key, scan_index_forward, projection_expressions,
    # index_name, ...), called positionally by DynamoDBBackend.query.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    conditions = kwargs.get("hash_key_conditions") or []
    if index_name and len(conditions) == 1:
        scope = (self, conditions[0][0], conditions[0][1])
    elif not index_name and hash_key is not None and self.range_key_attr is not None:
        scope = (self, None, hash_key)
    else:
        return _table_query(self, hash_key, *args, **kwargs)
    _QUERYING.scope = scope
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        _QUERYING.scope = None


Table.all_items = _all_items
Table.query = _query

_queue_delete_message = Queue.delete_message


def _delete_message(self, receipt_handle):
    # The queue's own lock, which SendMessage already takes to append.
    with self._messages_lock:
        return _queue_delete_message(self, receipt_handle)


Queue.delete_message = _delete_message

_backend_receive_message = SQSBackend.receive_message


def _receive_message(self, queue_name, *args, **kwargs):
    # Waiting for messages releases the lock (a Condition on an RLock).
    with self.get_queue(queue_name)._messages_lock:
        return _backend_receive_message(self, queue_name, *args, **kwargs)


SQSBackend.receive_message = _receive_message


def _now_ms():
    # moto's unix_time_millis(): (utcnow() - utcfromtimestamp(0)) in ms.
    return time.time() * 1000.0


# As moto's own properties, with the cheaper clock.
Message.visible = property(lambda self: _now_ms() > self.visible_at)
Message.delayed = property(lambda self: _now_ms() < self.delayed_until)


# SQS fair queues: on a standard queue whose messages carry a MessageGroupId
# (the tenant), a tenant with more than 10 % of the queue's messages in
# flight and at least 30 of its own is a noisy neighbour, and the messages of
# quiet tenants are handed out first; among noisy tenants, the one with the
# fewest in flight first (the AWS developer guide, "How Amazon SQS fair
# queues work"). moto hands messages out in arrival order. Its other measure,
# a tenant's share of the consumers' processing time, is not modelled.
FAIR_SHARE = 0.10
FAIR_MIN_IN_FLIGHT = 30


def _fair_order(queue, visible):
    now = _now_ms()
    in_flight = {}
    for m in queue._messages:
        if m.visible_at > now and m.group_id is not None:
            in_flight[m.group_id] = in_flight.get(m.group_id, 0) + 1
    total = sum(in_flight.values())
    noisy = {
        g: n
        for g, n in in_flight.items()
        if n >= FAIR_MIN_IN_FLIGHT and n > FAIR_SHARE * total
    }
    if not noisy or queue.fifo_queue:
        return visible
    # Stable: arrival order within quiet tenants, and within each noisy one.
    return sorted(visible, key=lambda m: (m.group_id in noisy, noisy.get(m.group_id, 0)))


Queue.messages = property(
    lambda self: _fair_order(
        self, [m for m in self._messages if m.visible and not m.delayed]
    )
)

_queue_wait_for_messages = Queue.wait_for_messages


def _wait_for_messages(self, timeout):
    # moto's long poll sleeps a whole second at a time and is woken only by
    # a new message, so one whose delay (or visibility timeout) ends is
    # handed out up to a second late; SQS answers a long poll as soon as a
    # message is available. Sleep no longer than until the next one is.
    now = _now_ms()
    with self._messages_lock:
        due = [
            at
            for m in self._messages
            for at in (m.delayed_until, m.visible_at)
            if at > now
        ]
    if due:
        timeout = min(timeout, max((min(due) - now) / 1000.0, 0.001))
    return _queue_wait_for_messages(self, timeout)


Queue.wait_for_messages = _wait_for_messages


def _retained(self, queue_name, message):
    # moto reads the same value through get_queue_attributes(), which builds
    # every attribute, approximate counts included, three times.
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > time.time()


SQSBackend.is_message_valid_based_on_retention_period = _retained

_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _modules
logging.getLogger("werkzeug").setLevel(logging.WARNING)

if __name__ == "__main__":
    sys.exit(main())
