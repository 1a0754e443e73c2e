"""scripts/check-template must pass the real template and fail broken copies of it."""

import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "template.yaml").read_text(encoding="utf-8")

# (what to replace, what to put instead): each breaks the template in one way.
BROKEN = {
    "function timeout out of range": ("Timeout: 7\n", "Timeout: 1000\n"),
    "SQS batch size over 10 without a window": ("BatchSize: 10\n", "BatchSize: 20000\n"),
    "misspelt queue property": (
        "event sources).\n      VisibilityTimeout: 42",
        "event sources).\n      VisibilityTimout: 36",
    ),
    "slow lane batch of 100 without its batching window": (
        "            MaximumBatchingWindowInSeconds: 1\n",
        "",
    ),
    "wrong GetAtt attribute on the slow lane": (
        "Queue: !GetAtt SlowQueue.Arn",
        "Queue: !GetAtt SlowQueue.Arnn",
    ),
    "misspelt function property": ("MemorySize: !Ref ApiMemorySize", "MemorySise: !Ref ApiMemorySize"),
    "unknown runtime": ("Runtime: provided.al2023", "Runtime: provided.al2099"),
    "wrong GetAtt attribute": ("Queue: !GetAtt EventsQueue.Arn", "Queue: !GetAtt EventsQueue.Arnn"),
    "misspelt response type": ("[ReportBatchItemFailures]", "[ReportBatchItemFailure]"),
    "log retention CloudWatch does not offer": ("AllowedValues: [1, 3, 5, 7, 14, 30,", "AllowedValues: [1, 3, 5, 7, 13, 30,"),
    "queue message size over the SQS maximum": (
        "events are at most 255 KiB).\n      MessageRetentionPeriod: 345600\n      MaximumMessageSize: 262144",
        "events are at most 255 KiB).\n      MessageRetentionPeriod: 345600\n      MaximumMessageSize: 2621440",
    ),
    "access logs to a log group that does not exist": (
        "DestinationArn: !GetAtt ApiAccessLogs.Arn",
        "DestinationArn: !GetAtt ApiAccessLog.Arn",
    ),
    "alarm topic encrypted with a parameter that does not exist": (
        "Type: AWS::SNS::Topic\n    Properties:\n      KmsMasterKeyId: !If [HasKmsKey, !Ref KmsKeyArn,",
        "Type: AWS::SNS::Topic\n    Properties:\n      KmsMasterKeyId: !If [HasKmsKey, !Ref KmsKeyAr,",
    ),
    # The static egress VPC: only the run with StaticEgress=true sees the
    # first (the default "false" is still allowed); the others break it for both.
    "StaticEgress values that refuse true": (
        'AllowedValues: ["true", "false"]',
        'AllowedValues: ["yes", "false"]',
    ),
    "route to a NAT gateway that does not exist": (
        "NatGatewayId: !Ref EgressNatB",
        "NatGatewayId: !Ref EgressNatC",
    ),
    "misspelt VPC endpoint type": ("VpcEndpointType: Gateway", "VpcEndpointType: Gateways"),
    "NAT gateway on an Elastic IP attribute that does not exist": (
        "AllocationId: !GetAtt EgressIpA.AllocationId",
        "AllocationId: !GetAtt EgressIpA.Allocation",
    ),
    # Only the run with a key given sees it: the empty default still matches.
    "KMS key pattern that refuses key ARNs": (
        ":[0-9]{12}:key/[a-zA-Z0-9-]+$",
        ":[0-9]{12}:alias/[a-zA-Z0-9/_-]+$",
    ),
}


def check(text: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [str(ROOT / "scripts" / "check-template"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_real_template_passes(tmp_path):
    result = check(TEMPLATE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_template_fails(name, tmp_path):
    old, new = BROKEN[name]
    assert TEMPLATE.count(old) == 1, f"{old!r} must appear exactly once in template.yaml"
    result = check(TEMPLATE.replace(old, new), tmp_path)
    assert result.returncode != 0, f"{name} passed the checks:\n{result.stdout}{result.stderr}"
