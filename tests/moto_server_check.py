"""Checks that scripts/moto_server.py's faster queries give the answers
DynamoDB gives: every matching item, in key order, across pages, in both
directions, after puts, updates and deletes. Run by scripts/test against the
moto it starts (boto3 reads AWS_ENDPOINT_URL).
"""

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


if __name__ == "__main__":
    main()
