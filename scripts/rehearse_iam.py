"""IAM for the deployment rehearsal (scripts/rehearse), on a moto that enforces it.

Reads the SAM-transformed template and, for each Lambda function, creates an
IAM user whose inline policy holds exactly the actions of the function's role:
the role's inline policies (SAM policy templates already expanded by the
transform) and the AWS managed policies it attaches. Writes the users' access
keys to a JSON file for the rehearsal, which runs each function with its own.

moto checks actions, not resources: every Allow statement gets `Resource: "*"`
here, and the resources are checked statically instead (each statement must
name the template's own table or queues, never a wildcard). moto does not
evaluate conditions: a Deny with a condition (no writes to API keys) would
deny every write, so it is left out here; an Allow with a condition (the
dispatcher's BatchWriteItem, on events' partitions only) is allowed whole.
tests/template.rs checks both conditions. A policy under `Fn::If` (the KMS
key's, when KmsKeyArn is set) is taken or left as the template's conditions
decide with the parameters at their defaults, as the rehearsal deploys it.

Usage: rehearse_iam.py --endpoint URL --template T.json --out iam.json
                       [--without Function:service:Action]
The first three requests are unauthenticated (moto's
INITIAL_NO_AUTH_ACTION_COUNT=3): they create the admin user that does the rest.
"""

import argparse
import json
import sys

import boto3

# What the AWS managed policies the template attaches allow (AWS documents
# their content; logs are not served by the rehearsal's moto).
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
    # SAM attaches it to both roles whenever the functions have a VpcConfig,
    # which they do, as an Fn::If on StaticEgress: the rights Lambda uses to
    # make the network interfaces in the egress VPC's subnets.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
}

# AWS authorizes a DynamoDB transaction per item (Put/Update/Delete); moto
# checks the action TransactWriteItems, which IAM does not have. So a
# function may run transactions when its role allows every kind of item its
# transactions hold: the api's hold Put+Update (create) and Delete+Update
# (delete); the dispatcher's only Puts (a batch's event copies).
TRANSACTION_ITEMS = {
    "ApiFunction": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    "DispatchFunction": {"dynamodb:PutItem"},
}

# Which resource types each service's statements may name.
SERVICE_RESOURCES = {"dynamodb": {"AWS::DynamoDB::Table"}, "sqs": {"AWS::SQS::Queue"}}
# Which parameters they may name: the customer-managed key is given, not made.
SERVICE_PARAMETERS = {"kms": {"KmsKeyArn"}}


def fail(message):
    print(f"rehearse_iam: {message}", file=sys.stderr)
    sys.exit(1)


def as_list(value):
    return value if isinstance(value, list) else [value]


def condition(template, name):
    """A condition of the template, with the parameters at their defaults."""
    conditions = template.get("Conditions", {})
    if name not in conditions:
        fail(f"no condition {name}")
    return truth(template, conditions[name])


def value_of(template, value):
    """A literal, or a parameter's default (CloudFormation compares them as strings)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        if parameter is None or "Default" not in parameter:
            fail(f"cannot decide a condition on Ref {value['Ref']}: not a parameter with a default")
        value = parameter["Default"]
    if isinstance(value, (dict, list)):
        fail(f"cannot decide a condition on {value!r}")
    return str(value).lower() if isinstance(value, bool) else str(value)


def truth(template, body):
    (function, args), = body.items()
    if function == "Condition":
        return condition(template, args)
    if function == "Fn::Not":
        return not truth(template, args[0])
    if function == "Fn::And":
        return all(truth(template, a) for a in args)
    if function == "Fn::Or":
        return any(truth(template, a) for a in args)
    if function == "Fn::Equals":
        return value_of(template, args[0]) == value_of(template, args[1])
    fail(f"cannot decide a condition's {function}")


NO_VALUE = object()


def decided(template, value):
    """The value with each Fn::If replaced by its branch and AWS::NoValue dropped."""
    if isinstance(value, list):
        items = (decided(template, v) for v in value)
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": "AWS::NoValue"}:
        return NO_VALUE
    if set(value) == {"Fn::If"}:
        name, then, otherwise = value["Fn::If"]
        return decided(template, then if condition(template, name) else otherwise)
    items = ((k, decided(template, v)) for k, v in value.items())
    return {k: v for k, v in items if v is not NO_VALUE}


def referenced(resource, template_resources):
    """The logical ids a statement's Resource element names, or None for a literal."""
    if isinstance(resource, str):
        return None
    if "Fn::GetAtt" in resource:
        return {resource["Fn::GetAtt"][0]}
    if "Ref" in resource:
        return {resource["Ref"]}
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        text, names = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        found = set()
        for name in template_resources:
            if "${" + name + "}" in text or "${" + name + "." in text:
                found.add(name)
        for value in names.values():
            found |= referenced(value, template_resources) or set()
        return found
    return None


def check_resources(function, statement, template_resources, template_parameters=()):
    """Each Allow statement names the template's own resources of its service
    (or, for a key, the parameter that gives it)."""
    services = {a.split(":")[0] for a in as_list(statement["Action"])}
    for resource in as_list(statement["Resource"]):
        if isinstance(resource, dict) and set(resource) == {"Ref"} and resource["Ref"] in template_parameters:
            name = resource["Ref"]
            allowed = set().union(*(SERVICE_PARAMETERS.get(s, set()) for s in services))
            if name not in allowed:
                fail(f"{function}: a statement on {sorted(services)} names the parameter {name}")
            continue
        names = referenced(resource, template_resources)
        if not names:
            fail(f"{function}: a statement on {sorted(services)} names {resource!r}, not a resource of the template")
        for name in names:
            kind = template_resources.get(name, {}).get("Type")
            allowed = set().union(*(SERVICE_RESOURCES.get(s, set()) for s in services))
            if kind not in allowed:
                fail(f"{function}: a statement on {sorted(services)} names {name} ({kind})")


def function_actions(template, function, without):
    resources = template["Resources"]
    role_name = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = resources[role_name]["Properties"]
    actions = set()
    for arn in role.get("ManagedPolicyArns", []):
        if arn not in MANAGED:
            fail(f"{function}: managed policy {arn} is unknown to the rehearsal; add what it allows")
        actions |= set(MANAGED[arn])
    for policy in decided(template, role.get("Policies", [])):
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            if statement["Effect"] == "Deny":
                if "Condition" not in statement:
                    fail(f"{function}: an unconditional Deny; the rehearsal does not model it")
                continue
            check_resources(function, statement, resources, template.get("Parameters", {}))
            actions |= set(as_list(statement["Action"]))
    removed = {a for f, a in without if f == function}
    missing = removed - actions
    if missing:
        fail(f"{function}: --without names {sorted(missing)}, which the role does not allow")
    actions -= removed
    needed = TRANSACTION_ITEMS.get(function)
    if needed and needed <= actions:
        actions.add("dynamodb:TransactWriteItems")
    return sorted(actions)


def user_with(iam, name, actions):
    iam.create_user(UserName=name)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="rehearsal", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--template", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--without", action="append", default=[], help="Function:service:Action")
    args = parser.parse_args()
    without = []
    for item in args.without:
        function, _, action = item.partition(":")
        if not action:
            fail(f"--without {item!r}: expected Function:service:Action")
        without.append((function, action))
    with open(args.template) as f:
        template = json.load(f)
    functions = sorted(n for n, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function")
    # Computed (and checked) before anything is created.
    actions = {f: function_actions(template, f, without) for f in functions}

    session = dict(region_name="us-east-1", endpoint_url=args.endpoint)
    iam = boto3.client("iam", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", **session)
    admin = user_with(iam, "rehearsal-admin", ["*"])
    iam = boto3.client("iam", aws_access_key_id=admin["key"], aws_secret_access_key=admin["secret"], **session)
    out = {"admin": admin, "functions": {}}
    for function in functions:
        out["functions"][function] = {**user_with(iam, f"rehearsal-{function}", actions[function]), "actions": actions[function]}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    for function in functions:
        print(f"rehearse_iam: {function}: {len(actions[function])} actions: {' '.join(actions[function])}")


if __name__ == "__main__":
    main()
