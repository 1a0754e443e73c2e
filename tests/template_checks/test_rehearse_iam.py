"""scripts/rehearse_iam.py's static resource check: the real template's
policies pass it; a statement on a wildcard, on another service's resource, or
an unconditional Deny fails it, naming the function. The KMS key's policy,
under Fn::If, is taken only when KmsKeyArn is given (sam_translate.py's
override), and may name that parameter alone."""

import copy
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import rehearse_iam  # noqa: E402


KEY = "arn:aws:kms:ap-south-1:123456789012:key/11111111-2222-3333-4444-555555555555"
KMS_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey*"}


def translate(*overrides):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sam_translate.py"), str(ROOT / "template.yaml"), *overrides],
        check=True,
        capture_output=True,
        text=True,
        env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def translated():
    return translate()


@pytest.fixture(scope="module")
def translated_with_key():
    return translate(f"KmsKeyArn={KEY}")


def statements(template, function):
    role = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    # The KMS key's policy (under Fn::If) is left out: kms_statement reaches it.
    policies = [p for p in template["Resources"][role]["Properties"]["Policies"] if "PolicyDocument" in p]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_the_template_passes(translated):
    for function in ("ApiFunction", "DispatchFunction"):
        actions = rehearse_iam.function_actions(translated, function, [])
        assert "dynamodb:PutItem" in actions
        assert "dynamodb:Scan" not in actions
    # Each function's policy holds the kinds of item its transactions hold:
    # the api's Put, Update and Delete, the dispatcher's Puts (event copies).
    assert "dynamodb:TransactWriteItems" in rehearse_iam.function_actions(translated, "ApiFunction", [])
    assert "dynamodb:TransactWriteItems" in rehearse_iam.function_actions(translated, "DispatchFunction", [])


def test_without_removes_one_action(translated):
    actions = rehearse_iam.function_actions(translated, "DispatchFunction", [("DispatchFunction", "dynamodb:PutItem")])
    assert "dynamodb:PutItem" not in actions
    assert "dynamodb:UpdateItem" in actions
    # Without PutItem the dispatcher's transactions are refused too.
    assert "dynamodb:TransactWriteItems" not in actions
    api = rehearse_iam.function_actions(translated, "ApiFunction", [("ApiFunction", "dynamodb:DeleteItem")])
    assert "dynamodb:TransactWriteItems" not in api


def test_kms_rights_only_with_a_key(translated, translated_with_key):
    assert translated["Parameters"]["KmsKeyArn"]["Default"] == ""
    assert translated_with_key["Parameters"]["KmsKeyArn"]["Default"] == KEY
    for function in ("ApiFunction", "DispatchFunction"):
        without = rehearse_iam.function_actions(translated, function, [])
        assert not [a for a in without if a.startswith("kms:")], function
        with_key = rehearse_iam.function_actions(translated_with_key, function, [])
        assert {a for a in with_key if a.startswith("kms:")} == KMS_ACTIONS, function
        assert set(with_key) - KMS_ACTIONS == set(without), function


def test_conditions_are_decided_at_the_defaults(translated, translated_with_key):
    assert not rehearse_iam.condition(translated, "HasKmsKey")
    assert rehearse_iam.condition(translated_with_key, "HasKmsKey")
    assert rehearse_iam.condition(translated, "ReserveApiConcurrency")
    assert rehearse_iam.decided(
        translated, [{"Fn::If": ["HasKmsKey", "a", {"Ref": "AWS::NoValue"}]}, {"k": {"Ref": "AWS::NoValue"}}]
    ) == [{}]


def test_static_egress_changes_no_right(translated):
    """SAM attaches AWSLambdaVPCAccessExecutionRole (network interfaces) to
    both roles whenever the functions have a VpcConfig, an Fn::If on
    StaticEgress included: the rehearsal knows what it allows, and the roles
    are the same with static egress as without."""
    with_egress = translate("StaticEgress=true")
    assert with_egress["Parameters"]["StaticEgress"]["Default"] == "true"
    for function in ("ApiFunction", "DispatchFunction"):
        actions = rehearse_iam.function_actions(with_egress, function, [])
        assert "ec2:CreateNetworkInterface" in actions, function
        assert actions == rehearse_iam.function_actions(translated, function, []), function


def test_an_unknown_parameter_override_fails():
    with pytest.raises(subprocess.CalledProcessError):
        translate("NoSuchParameter=1")


def kms_statement(template, function):
    role = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    policy = next(p for p in template["Resources"][role]["Properties"]["Policies"] if "Fn::If" in p)
    return policy["Fn::If"][1]["PolicyDocument"]["Statement"][0]


@pytest.mark.parametrize(
    "name, resource",
    [
        ("a wildcard", "*"),
        ("another parameter", {"Ref": "EdgeWebAclArn"}),
        ("a queue", {"Fn::GetAtt": ["SlowQueue", "Arn"]}),
    ],
)
def test_a_kms_statement_on_anything_but_the_key_fails(translated_with_key, name, resource):
    t = copy.deepcopy(translated_with_key)
    kms_statement(t, "DispatchFunction")["Resource"] = resource
    with pytest.raises(SystemExit):
        rehearse_iam.function_actions(t, "DispatchFunction", [])


def test_a_table_statement_on_the_key_fails(translated_with_key):
    t = copy.deepcopy(translated_with_key)
    statements(t, "DispatchFunction")[0]["Resource"] = {"Ref": "KmsKeyArn"}
    with pytest.raises(SystemExit):
        rehearse_iam.function_actions(t, "DispatchFunction", [])


def broken(translated, change):
    t = copy.deepcopy(translated)
    change(statements(t, "DispatchFunction"))
    return t


@pytest.mark.parametrize(
    "name, change",
    [
        ("a wildcard resource", lambda s: s[0].__setitem__("Resource", "*")),
        ("a queue named by a table statement", lambda s: s[0].__setitem__("Resource", {"Fn::GetAtt": ["SlowQueue", "Arn"]})),
        ("an unconditional Deny", lambda s: next(x for x in s if x["Effect"] == "Deny").pop("Condition")),
    ],
)
def test_a_broken_policy_fails(translated, name, change):
    with pytest.raises(SystemExit):
        rehearse_iam.function_actions(broken(translated, change), "DispatchFunction", [])
