#!/usr/bin/env python3
"""Generate data/resource_schemas.json from the CloudFormation registry schemas bundled in cfn-lint.

cfn-lint (MIT-0) ships the provider schemas of every region.  We take us-east-1, keep only
the resource types Spindle cares about, and reduce each schema to the three facts the change-set
planner needs: which properties force a replacement (createOnlyProperties), which are read-only
attributes, and the primary identifier.

Usage:
    tmp=$(mktemp -d)
    pip download --no-deps -d "$tmp" cfn-lint
    unzip -q "$tmp"/cfn_lint-*.whl -d "$tmp/x"
    python3 gen/gen_resource_schemas.py "$tmp/x/cfnlint/data/schemas" > data/resource_schemas.json
"""

import json
import os
import re
import sys

# Prefixes (service namespaces) and exact type names kept in the table.
PREFIXES = (
    "AWS::EC2::",
    "AWS::ElasticLoadBalancingV2::",
    "AWS::AutoScaling::",
    "AWS::CloudFormation::",
    "AWS::Route53::",
    "AWS::SSM::",
)
EXACT = {
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::User",
    "AWS::IAM::Group",
    "AWS::IAM::AccessKey",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Logs::LogGroup",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::SecretsManager::Secret",
    "AWS::CloudWatch::Alarm",
    "AWS::Events::Rule",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CertificateManager::Certificate",
    "AWS::ECR::Repository",
}


def pointer_to_path(p):
    # "/properties/Tags/*/Key" -> "Tags.*.Key"; the planner matches on the top-level name.
    p = re.sub(r"^/properties/", "", p)
    return p.replace("/", ".")


def main():
    root = sys.argv[1]
    providers = json.load(open(os.path.join(root, "providers", "us-east-1.json")))
    out = {}
    for type_name, digest in sorted(providers.items()):
        if not (type_name.startswith(PREFIXES) or type_name in EXACT):
            continue
        path = os.path.join(root, "resources", digest + ".json")
        schema = json.load(open(path))
        out[type_name] = {
            "createOnly": sorted({pointer_to_path(p) for p in schema.get("createOnlyProperties", [])}),
            "readOnly": sorted({pointer_to_path(p) for p in schema.get("readOnlyProperties", [])}),
            "primaryIdentifier": [pointer_to_path(p) for p in schema.get("primaryIdentifier", [])],
        }
    json.dump(
        {"source": "cfn-lint bundled CloudFormation registry schemas (us-east-1), MIT-0", "types": out},
        sys.stdout,
        indent=0,
        sort_keys=True,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
