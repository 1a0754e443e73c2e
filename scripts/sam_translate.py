"""Translates a SAM template to plain CloudFormation, offline, and prints it as JSON.

cfn-lint 1.x does not run the SAM translator, so checks such as Lambda's
Timeout range or an SQS BatchSize over 10 only apply to the translated template.
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader:
    """Managed policy names are never looked up: no AWS call is made."""

    def load(self):
        return {}


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # `sam build` replaces the local CodeUri; the translator wants an S3 one.
            resource.setdefault("Properties", {})["CodeUri"] = "s3://placeholder-bucket/code.zip"
    translated = transform(template, {}, OfflinePolicyLoader())
    json.dump(translated, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
