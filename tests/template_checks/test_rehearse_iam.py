"""scripts/rehearse_iam.py's static resource check: the real template's
policies pass it; a statement on a wildcard, on another service's resource, or
an unconditional Deny fails it, naming the function."""

import copy
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import rehearse_iam  # noqa: E402


@pytest.fixture(scope="module")
def translated():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sam_translate.py"), str(ROOT / "template.yaml")],
        check=True,
        capture_output=True,
        text=True,
        env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout)


def statements(template, function):
    role = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for p in template["Resources"][role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


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
