"""A rule cfn-lint does not have: an SQS event source with a batch over 10
needs a batching window (AWS refuses it at deploy time otherwise:
"Maximum batch window in seconds must be greater than 0 if maximum batch size
is greater than 10"). Reads the SAM-translated template (JSON) on stdin."""

import json
import sys

template = json.load(sys.stdin)
resources = template.get("Resources", {})


def is_queue(arn) -> bool:
    """A queue's ARN: `!GetAtt <an AWS::SQS::Queue>.Arn`, or a literal `arn:...:sqs:...`."""
    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
        target = arn["Fn::GetAtt"][0]
        return resources.get(target, {}).get("Type") == "AWS::SQS::Queue"
    return isinstance(arn, str) and ":sqs:" in arn


problems = []
for name, resource in resources.items():
    if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
        continue
    props = resource.get("Properties", {})
    batch = props.get("BatchSize", 10)
    window = props.get("MaximumBatchingWindowInSeconds", 0)
    if is_queue(props.get("EventSourceArn")):
        if isinstance(batch, int) and batch > 10 and not (isinstance(window, int) and window > 0):
            problems.append(
                f"{name}: BatchSize {batch} over 10 needs MaximumBatchingWindowInSeconds of 1 or more"
            )
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
