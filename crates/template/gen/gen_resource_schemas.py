#!/usr/bin/env python3
"""Generate the resource schema tables from the CloudFormation registry schemas bundled in cfn-lint.

cfn-lint (MIT-0) ships the provider schemas of every region.  We take us-east-1 and write two
files:

- data/resource_schemas.json: for the resource types Spindle cares about, the three facts the
  change-set planner needs: which properties force a replacement (createOnlyProperties), which
  are read-only attributes, and the primary identifier.
- data/resource_props.bin: for EVERY type, the property schema the validator checks templates
  against, reduced to the keywords it uses, each type compressed on its own (raw deflate) so the
  daemon decodes only the types a template uses, on first use.

Format of resource_props.bin (all text up to the blobs, so it can be inspected with `head`):
    SPINDLE-PROPS 1\n
    <count>\n
    <type name> <offset> <length>\n      (count lines, sorted by type name)
    \n
    <blobs>                              (offset is relative to the first blob byte)

Usage:
    python3 -m venv /tmp/cfn && /tmp/cfn/bin/pip install cfn-lint
    S=$(echo /tmp/cfn/lib/python3*/site-packages/cfnlint/data/schemas)
    python3 gen/gen_resource_schemas.py "$S" data/resource_schemas.json data/resource_props.bin
"""

import json
import os
import re
import sys
import zlib

# Prefixes (service namespaces) and exact type names kept in the change-set table.
PREFIXES = (
    "AWS::EC2::",
    "AWS::ElasticLoadBalancingV2::",
    "AWS::AutoScaling::",
    "AWS::CloudFormation::",
    "AWS::Route53::",
    "AWS::SSM::",
)
# Properties Spindle replaces the resource for although the registry schema updates them in
# place: a DB instance's Engine (postgres to mariadb is another server and another data
# directory format; AWS too refuses to change an engine in place).
EXTRA_CREATE_ONLY = {
    "AWS::RDS::DBInstance": ("Engine",),
}
EXACT = {
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBSubnetGroup",
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

# JSON Schema keywords whose value is kept as is.  Everything else (descriptions, formats,
# insertionOrder, uniqueItems, dependencies, ...) is dropped: the validator doesn't check it,
# and a check it can't do must not become a false error.
SCALAR_KEYWORDS = (
    "type",
    "required",
    "enum",
    "enumCaseInsensitive",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "$ref",
)


def pointer_to_path(p):
    # "/properties/Tags/*/Key" -> "Tags.*.Key"; the planner matches on the top-level name.
    p = re.sub(r"^/properties/", "", p)
    return p.replace("/", ".")


def resolve(schema, node):
    """Follows a local `$ref` (one level); other nodes are returned unchanged."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return schema.get("definitions", {}).get(ref[len("#/definitions/"):], {})
    return node


def reduce(schema, node, depth=0):
    """The keywords of `node` the validator checks, with oneOf/anyOf/allOf folded in.

    Composite branches are not checked one by one (that would turn "matches none of the
    alternatives" into messages nobody can act on); instead the properties any branch
    declares are allowed, and the types the branches allow are the node's types.
    """
    if not isinstance(node, dict) or depth > 64:
        return {}
    out = {}
    for k in SCALAR_KEYWORDS:
        if k in node:
            out[k] = node[k]
    if out.get("$ref") is not None and not str(out["$ref"]).startswith("#/definitions/"):
        del out["$ref"]
    if not isinstance(out.get("type", ""), (str, list)):
        del out["type"]
    if node.get("additionalProperties") is False:
        out["additionalProperties"] = False
    props = {}
    for name, sub in (node.get("properties") or {}).items():
        props[name] = reduce(schema, sub, depth + 1)
    branch_types = []
    all_typed = True
    for comb in ("oneOf", "anyOf", "allOf"):
        for branch in node.get(comb) or []:
            b = resolve(schema, branch)
            if not isinstance(b, dict):
                continue
            for name, sub in (b.get("properties") or {}).items():
                props.setdefault(name, reduce(schema, sub, depth + 1))
            if comb != "allOf":
                t = b.get("type")
                if t is None:
                    all_typed = False
                else:
                    branch_types.extend(t if isinstance(t, list) else [t])
            for pp in b.get("patternProperties") or {}:
                out.setdefault("patternProperties", {})[pp] = {}
    if props:
        out["properties"] = props
    for pp, sub in (node.get("patternProperties") or {}).items():
        out.setdefault("patternProperties", {})[pp] = reduce(schema, sub, depth + 1)
    if "type" not in out and "$ref" not in out and branch_types and all_typed:
        out["type"] = sorted(set(branch_types))
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = reduce(schema, items, depth + 1)
    return out


def reachable_definitions(schema, reduced_props):
    """Names of the definitions reachable from the properties (the rest are dropped)."""
    defs = schema.get("definitions") or {}
    seen = set()
    todo = []

    def refs(n):
        if isinstance(n, dict):
            r = n.get("$ref")
            if isinstance(r, str) and r.startswith("#/definitions/"):
                todo.append(r[len("#/definitions/"):])
            for v in n.values():
                refs(v)
        elif isinstance(n, list):
            for v in n:
                refs(v)

    refs(reduced_props)
    out = {}
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        r = reduce(schema, defs[name])
        out[name] = r
        refs(r)
    return out


def property_schema(schema):
    top = reduce(schema, {k: schema[k] for k in ("properties", "required", "additionalProperties", "oneOf", "anyOf", "allOf") if k in schema})
    defs = reachable_definitions(schema, top)
    if defs:
        top["definitions"] = defs
    return top


def main():
    root, table_out, props_out = sys.argv[1], sys.argv[2], sys.argv[3]
    providers = json.load(open(os.path.join(root, "providers", "us-east-1.json")))
    table = {}
    blobs = []
    for type_name, digest in sorted(providers.items()):
        schema = json.load(open(os.path.join(root, "resources", digest + ".json")))
        text = json.dumps(property_schema(schema), sort_keys=True, separators=(",", ":"))
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        blobs.append((type_name, c.compress(text.encode()) + c.flush()))
        if not (type_name.startswith(PREFIXES) or type_name in EXACT):
            continue
        table[type_name] = {
            "createOnly": sorted(
                {pointer_to_path(p) for p in schema.get("createOnlyProperties", [])}
                | set(EXTRA_CREATE_ONLY.get(type_name, ()))
            ),
            "readOnly": sorted({pointer_to_path(p) for p in schema.get("readOnlyProperties", [])}),
            "primaryIdentifier": [pointer_to_path(p) for p in schema.get("primaryIdentifier", [])],
        }
    with open(table_out, "w") as f:
        json.dump(
            {"source": "cfn-lint bundled CloudFormation registry schemas (us-east-1), MIT-0", "types": table},
            f,
            indent=0,
            sort_keys=True,
        )
        f.write("\n")
    with open(props_out, "wb") as f:
        f.write(b"SPINDLE-PROPS 1\n%d\n" % len(blobs))
        offset = 0
        for name, blob in blobs:
            f.write(b"%s %d %d\n" % (name.encode(), offset, len(blob)))
            offset += len(blob)
        f.write(b"\n")
        for _, blob in blobs:
            f.write(blob)


if __name__ == "__main__":
    main()
