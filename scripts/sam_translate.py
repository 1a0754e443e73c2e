"""Translates a SAM template to plain CloudFormation, offline, and prints it as JSON.

cfn-lint 1.x does not run the SAM translator, so checks such as Lambda's
Timeout range or an SQS BatchSize over 10 only apply to the translated template.

    sam_translate.py TEMPLATE [Name=Value ...]

Each Name=Value is a parameter override, as `sam deploy --parameter-overrides`
gives it: the translator sees it, and it becomes the parameter's Default in
the output, so that cfn-lint and the rehearsal (which read parameters at
their defaults) check the template as deployed with it.
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader:
    """Managed policy names are never looked up: no AWS call is made."""

    def load(self):
        return {}


def overrides(items: list[str], parameters: dict) -> dict:
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"sam_translate: {item!r}: expected Name=Value")
        if name not in parameters:
            sys.exit(f"sam_translate: {name}: the template has no such parameter")
        values[name] = value
    return values


def main(path: str, items: list[str]) -> None:
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # `sam build` replaces the local CodeUri; the translator wants an S3 one.
            resource.setdefault("Properties", {})["CodeUri"] = "s3://placeholder-bucket/code.zip"
    values = overrides(items, template.get("Parameters", {}))
    translated = transform(template, values, OfflinePolicyLoader())
    for name, value in values.items():
        translated["Parameters"][name]["Default"] = value
    json.dump(translated, sys.stdout, indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: sam_translate.py TEMPLATE [Name=Value ...]")
    main(sys.argv[1], sys.argv[2:])
