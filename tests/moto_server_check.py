"""Checks scripts/moto_server.py's changes to moto:
- its faster queries give the answers DynamoDB gives: every matching item,
  in key order, across pages, in both directions, after puts, updates and
  deletes (against the moto scripts/test starts; boto3 reads AWS_ENDPOINT_URL);
- its queue loses, revives and duplicates no message when several threads
  send, receive and delete at once (in this process, with moto's own models
  and the thread switch interval made tiny to bring races out; plain moto
  5.2.5 fails this);
- its TransactWriteItems, which checks every condition before writing
  instead of deep-copying the table, answers every transaction of a set
  (all written; one condition failing, with and without the old item;
  two operations on one item; more than 100 items; an update that fails
  while writing) as plain moto does, and leaves the same items;
- its cheaper clock and retention check give moto's own answers: the
  approximate counts of visible, in-flight and delayed messages, a message
  coming back when its visibility timeout ends, and a message past the
  queue's retention period never handed out;
- its long poll answers as SQS's does: as soon as a delayed message is due
  (plain moto notices it up to a second late);
- its queue hands out messages as an SQS fair queue does (the developer
  guide's rule): while one tenant (MessageGroupId) has 30 or more messages
  in flight and more than 10 % of the queue's, other tenants' messages come
  first; below that, arrival order (plain moto: always arrival order).
"""

import importlib.util
import pathlib
import sys
import threading
import time
import uuid

import boto3

ddb = boto3.client("dynamodb")
TABLE = f"moto-check-{uuid.uuid4().hex[:8]}"


def query(**kwargs):
    items, start = [], None
    while True:
        page = dict(TableName=TABLE, **kwargs)
        if start:
            page["ExclusiveStartKey"] = start
        answer = ddb.query(**page)
        items += answer["Items"]
        start = answer.get("LastEvaluatedKey")
        if not start:
            return items


def on_index(value, **kwargs):
    return query(
        IndexName="GSI1",
        KeyConditionExpression="G = :g" + kwargs.pop("and_", ""),
        ExpressionAttributeValues={":g": {"S": value}, **kwargs.pop("values", {})},
        **kwargs,
    )


def main():
    strings = lambda *names: [{"AttributeName": n, "AttributeType": "S"} for n in names]
    keys = lambda h, r: [
        {"AttributeName": h, "KeyType": "HASH"},
        {"AttributeName": r, "KeyType": "RANGE"},
    ]
    ddb.create_table(
        TableName=TABLE,
        KeySchema=keys("PK", "SK"),
        AttributeDefinitions=strings("PK", "SK", "G", "GS"),
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {"IndexName": "GSI1", "KeySchema": keys("G", "GS"), "Projection": {"ProjectionType": "ALL"}}
        ],
    )
    for p in range(30):
        for s in range(30):
            item = {"PK": {"S": f"P{p}"}, "SK": {"S": f"{'A' if s % 2 else 'B'}#{s:03}"}}
            if s % 3:  # a third of the items are not in the index
                item["G"] = {"S": f"G{s % 5}"}
                item["GS"] = {"S": f"{p:03}#{s:03}"}
            ddb.put_item(TableName=TABLE, Item=item)

    # The table's own key: one partition, a key prefix, pages, both directions.
    found = query(
        KeyConditionExpression="PK = :p AND begins_with(SK, :a)",
        ExpressionAttributeValues={":p": {"S": "P7"}, ":a": {"S": "A#"}},
        Limit=7,
    )
    assert [i["SK"]["S"] for i in found] == [f"A#{s:03}" for s in range(1, 30, 2)], found
    found = query(
        KeyConditionExpression="PK = :p",
        ExpressionAttributeValues={":p": {"S": "P9"}},
        ScanIndexForward=False,
        Limit=4,
    )
    assert len(found) == 30 and found[0]["SK"]["S"] == "B#028", found[0]
    assert query(KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "none"}}) == []

    # The index: every item with the value, sorted, across pages, both ways.
    want = sorted(f"{p:03}#{s:03}" for p in range(30) for s in range(30) if s % 3 and s % 5 == 2)
    assert [i["GS"]["S"] for i in on_index("G2", Limit=9)] == want
    found = on_index("G2", and_=" AND GS > :s", values={":s": {"S": "020"}}, ScanIndexForward=False, Limit=9)
    assert [i["GS"]["S"] for i in found] == [w for w in reversed(want) if w > "020"]

    # Writes are seen by the next query.
    new = {"PK": {"S": "new"}, "SK": {"S": "x"}}
    ddb.put_item(TableName=TABLE, Item={**new, "G": {"S": "G2"}, "GS": {"S": "999"}})
    found = on_index("G2")
    assert len(found) == len(want) + 1 and found[-1]["GS"]["S"] == "999"
    ddb.update_item(
        TableName=TABLE,
        Key=new,
        UpdateExpression="SET G = :g",
        ExpressionAttributeValues={":g": {"S": "G3"}},
    )
    assert len(on_index("G2")) == len(want)
    assert on_index("G3")[-1]["GS"]["S"] == "999"
    ddb.delete_item(TableName=TABLE, Key={"PK": {"S": "P0"}, "SK": {"S": "B#002"}})
    assert [i["GS"]["S"] for i in on_index("G2")] == [w for w in want if w != "000#002"]
    ddb.delete_table(TableName=TABLE)
    print("moto_server_check: queries answer as DynamoDB does")


def transactions(client, table):
    """A set of transactions and what each came to, then the table's items."""
    key = lambda pk, sk="E": {"PK": {"S": pk}, "SK": {"S": sk}}
    new = lambda pk, **attrs: {
        "Put": {
            "TableName": table,
            "Item": {**key(pk), **{k: {"S": v} for k, v in attrs.items()}},
            "ConditionExpression": "attribute_not_exists(PK)",
        }
    }
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK")],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(200):
        client.put_item(TableName=table, Item={**key(f"seed{i}"), "n": {"N": str(i)}})
    old_item = dict(new("seed1")["Put"], ReturnValuesOnConditionCheckFailure="ALL_OLD")
    update = lambda pk, expression, **extra: {
        "Update": {"TableName": table, "Key": key(pk), "UpdateExpression": expression, **extra}
    }
    cases = [
        [new("a", v="1"), new("b", v="2"), new("c", v="3")],
        [new("d"), new("a", v="again"), new("e")],
        [new("f"), {"Put": old_item}],
        [new("g"), new("g")],
        [new(f"many{i}") for i in range(101)],
        [
            update("seed2", "SET v = :v", ExpressionAttributeValues={":v": {"S": "x"}},
                   ConditionExpression="attribute_exists(PK)"),
            {"Delete": {"TableName": table, "Key": key("seed3")}},
            {"ConditionCheck": {"TableName": table, "Key": key("seed4"),
                                "ConditionExpression": "attribute_exists(PK)"}},
            new("h"),
        ],
        [new("i"), update("seed5", "SET #missing = :v", ExpressionAttributeValues={":v": {"S": "x"}})],
        [new("j"), update("seed6", "ADD n :s", ExpressionAttributeValues={":s": {"S": "text"}})],
    ]
    outcomes = []
    for items in cases:
        try:
            client.transact_write_items(TransactItems=items)
            outcomes.append("written")
        except client.exceptions.ClientError as e:
            reasons = [(r.get("Code"), r.get("Item")) for r in e.response.get("CancellationReasons", [])]
            outcomes.append((e.response["Error"]["Code"], reasons))
    items = client.scan(TableName=table)["Items"]
    client.delete_table(TableName=table)
    return outcomes, sorted(items, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def plain_moto_transactions():
    """The same transactions on moto's own models, in this process, before
    scripts/moto_server.py has changed anything."""
    from moto import mock_aws

    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="eu-west-1", endpoint_url="https://dynamodb.eu-west-1.amazonaws.com"
        )
        return transactions(client, "plain")


def check_transactions(plain):
    patched = transactions(ddb, f"{TABLE}-tx")
    assert patched[0] == plain[0], f"outcomes differ:\n patched {patched[0]}\n plain   {plain[0]}"
    assert patched[1] == plain[1], "the items left differ"
    failed = ("TransactionCanceledException", [("None", None), ("ConditionalCheckFailed", None), ("None", None)])
    assert plain[0][0] == "written" and plain[0][1] == failed, plain[0][:2]
    print("moto_server_check: transactions answer as plain moto's")


def patched_sqs():
    """moto's SQS models in this process, with scripts/moto_server.py's changes."""
    path = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "moto_server.py"
    spec = importlib.util.spec_from_file_location("moto_server", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    return sqs_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]


def check_queue_answers(backend):
    queue_name = f"moto-check-{uuid.uuid4().hex[:8]}"
    queue = backend.create_queue(queue_name, MessageRetentionPeriod="60")
    counts = lambda: {
        name: int(backend.get_queue_attributes(queue_name, [name])[name])
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    }
    for body in ("a", "b"):
        backend.send_message(queue_name, body)
    backend.send_message(queue_name, "later", delay_seconds=2)
    assert counts() == {
        "ApproximateNumberOfMessages": 2,
        "ApproximateNumberOfMessagesNotVisible": 0,
        "ApproximateNumberOfMessagesDelayed": 1,
    }, counts()
    assert len(backend.receive_message(queue_name, 1, 0, 1)) == 1
    assert counts()["ApproximateNumberOfMessages"] == 1, counts()
    assert counts()["ApproximateNumberOfMessagesNotVisible"] == 1, counts()
    # Its visibility timeout (1 s) ends, and the delay (2 s) with it.
    time.sleep(2.2)
    assert counts() == {
        "ApproximateNumberOfMessages": 3,
        "ApproximateNumberOfMessagesNotVisible": 0,
        "ApproximateNumberOfMessagesDelayed": 0,
    }, counts()
    # Past the retention period (60 s): one message sent 61 s ago.
    stale = next(m for m in queue._messages if m.body == "b")
    stale.sent_timestamp -= 61_000
    # (moto stops a receive at a message past retention; the next goes on.)
    got = [m.body for _ in range(3) for m in backend.receive_message(queue_name, 10, 0, 30)]
    assert sorted(got) == ["a", "later"], got
    print("moto_server_check: the queue's counts, visibility and retention answer as SQS does")


def check_long_poll_wakes_when_a_delay_ends(backend):
    queue_name = f"moto-check-{uuid.uuid4().hex[:8]}"
    backend.create_queue(queue_name)
    lateness = []
    for delay_ms in (250, 700, 1300):
        # A delayed message whose delay ends while a long poll waits: SQS
        # answers the poll then. (Its end is set to the millisecond, as a
        # delay sent a fraction of a second ago would end.)
        message = backend.send_message(queue_name, f"late-{delay_ms}", delay_seconds=2)
        message.delayed_until = time.time() * 1000.0 + delay_ms
        started = time.time()
        got = backend.receive_message(queue_name, 10, 5, 30)
        waited = (time.time() - started) * 1000
        assert [m.body for m in got] == [f"late-{delay_ms}"], got
        lateness.append(waited - delay_ms)
        for m in got:
            backend.delete_message(queue_name, m.receipt_handle)
    assert all(-5 < late < 150 for late in lateness), f"late by {lateness} ms"
    print(
        "moto_server_check: a long poll answers when a delay ends "
        f"(late by at most {max(lateness):.0f} ms)"
    )


def check_fair_queue(backend):
    queue_name = f"moto-check-{uuid.uuid4().hex[:8]}"
    backend.create_queue(queue_name)
    send = lambda body, group: backend.send_message(queue_name, body, group_id=group)
    for i in range(200):
        send(f"noisy-{i}", "noisy")
    # 29 of the noisy tenant's in flight: not yet noisy, arrival order.
    first = backend.receive_message(queue_name, 10, 0, 60)
    first += backend.receive_message(queue_name, 10, 0, 60)
    first += backend.receive_message(queue_name, 9, 0, 60)
    send("quiet-1", "quiet")
    got = backend.receive_message(queue_name, 1, 0, 60)
    assert [m.body for m in got] == ["noisy-29"], [m.body for m in got]
    # 30 in flight, 100 % of the queue's: the quiet tenant's messages first.
    send("quiet-2", "quiet")
    send("other-1", None)
    got = [m.body for m in backend.receive_message(queue_name, 10, 0, 60)]
    assert got[:3] == ["quiet-1", "quiet-2", "other-1"], got
    assert got[3:] == [f"noisy-{i}" for i in range(30, 37)], got
    print("moto_server_check: a noisy tenant's backlog waits behind quiet tenants' messages, as on an SQS fair queue")


def check_queue_under_concurrency(backend):
    queue_name = f"moto-check-{uuid.uuid4().hex[:8]}"
    queue = backend.create_queue(queue_name)
    sent = [f"backlog-{i}" for i in range(300)] + [f"m-{i}" for i in range(1500)]
    for body in sent[:300]:  # a backlog, as in a load run
        backend.send_message(queue_name, body)
    deleted, problems = [], []
    stop = threading.Event()

    def send():
        for body in sent[300:]:
            backend.send_message(queue_name, body)

    def consume():
        while not stop.is_set():
            for message in backend.receive_message(queue_name, 10, 0, 60):
                try:
                    backend.delete_message(queue_name, message.receipt_handle)
                    deleted.append(message.body)
                except Exception as e:  # an invalid receipt handle: a race
                    problems.append(f"deleting {message.body}: {e!r}")

    def guarded(work):
        def run():
            try:
                work()
            except Exception as e:  # e.g. "Set changed size during iteration"
                problems.append(repr(e))
        return run

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        sender = threading.Thread(target=guarded(send))
        consumers = [threading.Thread(target=guarded(consume)) for _ in range(3)]
        for t in [sender, *consumers]:
            t.start()
        sender.join()
        stop.set()
        for t in consumers:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    left = [m.body for m in queue._messages]
    missing = set(sent) - set(left) - set(deleted)
    twice = len(deleted) - len(set(deleted)) + len(set(left) & set(deleted))
    assert not problems, problems[:5]
    assert not missing, f"{len(missing)} messages lost, e.g. {sorted(missing)[:5]}"
    assert twice == 0, f"{twice} messages handed over again after their delete"
    assert len(left) + len(deleted) == len(sent)
    print("moto_server_check: the queue lost, revived and duplicated nothing")


if __name__ == "__main__":
    plain = plain_moto_transactions()
    main()
    check_transactions(plain)
    sqs = patched_sqs()
    check_queue_answers(sqs)
    check_long_poll_wakes_when_a_delay_ends(sqs)
    check_fair_queue(sqs)
    check_queue_under_concurrency(sqs)
