//! The readers: YAML short and long forms, JSON, positions, and what AWS rejects.

use expect_test::{expect, Expect};
use spindle_template::{parse, read};

/// Reads `src` and renders the tree (with positions when `pos`) or the diagnostics.
fn check(src: &str, pos: bool, expect: Expect) {
    let out = match read(src, "t.yaml") {
        Ok(n) => n.dump(pos),
        Err(d) => d
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    expect.assert_eq(&out);
}

fn same(a: &str, b: &str) {
    let x = read(a, "a").unwrap().dump(false);
    let y = read(b, "b").unwrap().dump(false);
    assert_eq!(x, y, "\n{a}\nvs\n{b}");
}

#[test]
fn every_short_form_tag() {
    check(
        r#"
A: !Ref X
B: !Sub 'a-${X}'
C: !GetAtt Res.Attr
D: !GetAtt Db.Endpoint.Address
E: !GetAtt [Res, Attr]
F: !Join [',', [a, b]]
G: !Select [0, !GetAZs '']
H: !Split [',', 'a,b']
I: !If [Cond, 1, 2]
J: !Equals [a, b]
K: !And [!Condition C1, !Not [!Condition C2]]
L: !Or [!Condition C1, !Condition C2]
M: !FindInMap [Map, Top, Second]
N: !ImportValue Export
O: !Base64 text
P: !Cidr [10.0.0.0/16, 2, 8]
Q: !Transform {Name: AWS::Include, Parameters: {Location: s3://x}}
"#,
        false,
        expect![[
            r#"{A: !Ref("X"), B: !Fn::Sub("a-${X}"), C: !Fn::GetAtt(["Res", "Attr"]), D: !Fn::GetAtt(["Db", "Endpoint.Address"]), E: !Fn::GetAtt(["Res", "Attr"]), F: !Fn::Join([",", ["a", "b"]]), G: !Fn::Select([0, !Fn::GetAZs("")]), H: !Fn::Split([",", "a,b"]), I: !Fn::If(["Cond", 1, 2]), J: !Fn::Equals(["a", "b"]), K: !Fn::And([!Condition("C1"), !Fn::Not([!Condition("C2")])]), L: !Fn::Or([!Condition("C1"), !Condition("C2")]), M: !Fn::FindInMap(["Map", "Top", "Second"]), N: !Fn::ImportValue("Export"), O: !Fn::Base64("text"), P: !Fn::Cidr(["10.0.0.0/16", 2, 8]), Q: !Fn::Transform({Name: "AWS::Include", Parameters: {Location: "s3://x"}})}"#
        ]],
    );
}

#[test]
fn short_and_long_forms_give_the_same_tree() {
    same("A: !Ref X", "A: {Ref: X}");
    same("A: !Sub 'a-${X}'", "A: {'Fn::Sub': 'a-${X}'}");
    same("A: !GetAtt R.Arn", "A: {'Fn::GetAtt': [R, Arn]}");
    same("A: !GetAtt R.Arn", "A: {'Fn::GetAtt': R.Arn}");
    same("A: !If [C, 1, 2]", "A: {'Fn::If': [C, 1, 2]}");
    same("A: !Base64 {'Fn::Sub': x}", "A: {'Fn::Base64': !Sub x}");
    same("A: !Condition C", "A: {Condition: C}");
    same(
        "A: !Select [1, !Split [',', !Ref L]]",
        r#"{"A": {"Fn::Select": ["1", {"Fn::Split": [",", {"Ref": "L"}]}]}}"#
            .replace("\"1\"", "1")
            .as_str(),
    );
    // JSON and YAML agree on the long form.
    same(
        r#"{"A": {"Fn::Join": ["", ["a", {"Ref": "AWS::Region"}]]}, "B": [1, true, null, "s"]}"#,
        "A: {Fn::Join: ['', [a, !Ref 'AWS::Region']]}\nB: [1, true, null, s]",
    );
}

#[test]
fn condition_key_in_an_iam_policy_stays_a_key() {
    check(
        "S: {Condition: {StringEquals: {a: b}}}",
        false,
        expect![[r#"{S: {Condition: {StringEquals: {a: "b"}}}}"#]],
    );
}

#[test]
fn positions_are_one_based_line_and_column() {
    check(
        "A:\n  B: !Ref X\n  C: [1, 'two']\n",
        true,
        expect![[r#"{A: {B: !Ref("X"@2:6)@2:6, C: [1@3:7, "two"@3:10]@3:6}@2:3}@1:1"#]],
    );
    check(
        "{\n  \"A\": {\"Ref\": \"X\"},\n\t\"B\": [1, \"é\", 2]\n}",
        true,
        expect![[r#"{A: !Ref("X"@2:16)@2:8, B: [1@3:8, "é"@3:11, 2@3:16]@3:7}@1:1"#]],
    );
}

#[test]
fn scalars_keep_their_yaml_types() {
    check(
        "a: 1\nb: '1'\nc: true\nd: 'true'\ne: ~\nf: 2012-10-17\ng: 1.5e3\nh: 0x1F\ni: -3\nj: .inf\nk: !!str 10\nl: 1_000\nm: [Yes, no, ON, Off, y, n, 'yes']",
        false,
        expect![[r#"{a: 1, b: "1", c: true, d: "true", e: null, f: "2012-10-17", g: 1.5e3, h: 0x1F, i: -3, j: .inf, k: "10", l: "1_000", m: [true, false, true, false, "y", "n", "yes"]}"#]],
    );
}

#[test]
fn what_cloudformation_rejects_in_yaml() {
    check(
        "a: &x 1\nb: *x\n",
        false,
        expect!["t.yaml:2:4: syntax: YAML aliases are not supported by CloudFormation"],
    );
    check(
        "a: {k: 1}\nb:\n  <<: {k: 2}\n  j: 3\n",
        false,
        expect!["t.yaml:3:3: syntax: YAML merge keys (<<) are not supported by CloudFormation"],
    );
    check(
        "a: 1\nb: 2\na: 3\nc: {x: 1, x: 2}\n",
        false,
        expect![[r#"
            t.yaml:3:1: structure: duplicate key `a` (first at 1:1)
            t.yaml:4:11: structure: duplicate key `x` (first at 4:5)"#]],
    );
    check("a: !Ref !Sub x\n", false, expect!["t.yaml:1:9: syntax: YAML: while parsing a block mapping, did not find expected key (a node can carry only one tag: write `Fn::Base64: !Sub ...`, not `!Base64 !Sub ...`)"]);
    check(
        "a: !Foo x\n",
        false,
        expect!["t.yaml:1:4: syntax: unknown tag !Foo"],
    );
    check(
        "a: !!binary aGk=\n",
        false,
        expect!["t.yaml:1:4: syntax: the YAML tag !!binary is not supported by CloudFormation"],
    );
    check(
        "a: 1\n---\nb: 2\n",
        false,
        expect!["t.yaml:3:1: syntax: a template must be a single YAML document"],
    );
    check(
        "a: [1, 2\n",
        false,
        expect!["t.yaml:2:1: syntax: YAML: while parsing a flow sequence, expected ',' or ']'"],
    );
    check(
        "",
        false,
        expect!["t.yaml:1:1: syntax: the template is empty"],
    );
    check(
        "[a, b]: 1\n",
        false,
        expect!["t.yaml:1:1: syntax: mapping keys must be plain strings"],
    );
}

#[test]
fn what_cloudformation_rejects_in_json() {
    check(
        r#"{"a": 1, "a": 2}"#,
        false,
        expect!["t.yaml:1:10: structure: duplicate key `a` (first at 1:2)"],
    );
    check(
        r#"{"a": [1, 2,]}"#,
        false,
        expect!["t.yaml:1:13: syntax: JSON: unexpected character"],
    );
    check(
        r#"{"a": 01}"#,
        false,
        expect!["t.yaml:1:8: syntax: JSON: expected `,` or `}`"],
    );
    check(
        "{\"a\": \"x\ny\"}",
        false,
        expect!["t.yaml:1:9: syntax: JSON: control character in string"],
    );
    check(
        r#"{"a": "\ud83d\ude00 \u00e9 \/"}"#,
        false,
        expect![[r#"{a: "😀 é /"}"#]],
    );
    check(
        r#"{"a": 1} x"#,
        false,
        expect!["t.yaml:1:10: syntax: JSON: unexpected text after the document"],
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
    // saphyr's own recursion limit answers first for YAML.
    let r = read(&format!("a: {deep}"), "t").unwrap_err().to_string();
    assert!(r.contains("recursion limit exceeded"), "{r}");
    let deep_map = "a:\n".to_string()
        + &(1..400)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect::<String>();
    let r = read(&deep_map, "t").unwrap_err().to_string();
    assert!(
        r.contains("nesting deeper than") || r.contains("recursion limit"),
        "{r}"
    );
    let deep_json = format!("{{\"a\": {}1{}}}", "[".repeat(1000), "]".repeat(1000));
    assert!(read(&deep_json, "t")
        .unwrap_err()
        .to_string()
        .contains("nesting deeper than"));
}

/// Renders the diagnostics of `parse` (structure and quotas).
fn check_parse(src: &str, expect: Expect) {
    let out = match parse(src, "t.yaml") {
        Ok(_) => "ok".to_string(),
        Err(d) => d
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    expect.assert_eq(&out);
}

#[test]
fn sections_and_shapes() {
    check_parse(
        "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  A:\n    Type: AWS::S3::Bucket\n",
        expect!["ok"],
    );
    check_parse(
        "Resources:\n  A:\n    Type: AWS::S3::Bucket\n    Propertys: {}\nOutput: {}\nAWSTemplateFormatVersion: '2011-01-01'\n",
        expect![[r#"
            t.yaml:4:5: Resources.A: structure: unknown resource attribute `Propertys` (expected one of Type, Properties, DependsOn, Condition, DeletionPolicy, UpdateReplacePolicy, CreationPolicy, UpdatePolicy, Metadata, Version)
            t.yaml:5:1: structure: unknown top-level section `Output`
            t.yaml:6:27: AWSTemplateFormatVersion: structure: unsupported format version `2011-01-01` (only 2010-09-09)"#]],
    );
    check_parse(
        "Description: x\n",
        expect!["t.yaml:1:1: structure: a template needs a `Resources` section"],
    );
    check_parse(
        "Resources:\n  My-Res:\n    Properties: {}\n  B: 3\n",
        expect![[r#"
            t.yaml:2:3: Resources.My-Res: structure: logical ids must be alphanumeric (A-Za-z0-9)
            t.yaml:3:5: Resources.My-Res: structure: a resource needs `Type`
            t.yaml:4:6: Resources.B: structure: expected a mapping, found a number"#]],
    );
    check_parse(
        "Parameters:\n  P:\n    Type: Strin\n  Q:\n    Type: Number\n    Default: abc\n    MinValue: 1\n  R:\n    Type: String\n    Default: x\n    AllowedValues: [a, b]\n    Foo: 1\nResources: {}\n",
        expect![[r#"
            t.yaml:3:11: Parameters.P.Type: parameter: unknown parameter type `Strin`
            t.yaml:5:5: Parameters.Q.Default: parameter: default value: `abc` is not a number
            t.yaml:12:5: Parameters.R: parameter: unknown parameter attribute `Foo`
            t.yaml:9:5: Parameters.R.Default: parameter: default value: `x` is not one of the AllowedValues [a, b]"#]],
    );
}

#[test]
fn quotas() {
    let mut many = String::from("Resources:\n");
    for i in 0..501 {
        many.push_str(&format!("  R{i}:\n    Type: AWS::SNS::Topic\n"));
    }
    many.push_str("Outputs:\n");
    for i in 0..201 {
        many.push_str(&format!("  O{i}:\n    Value: x\n"));
    }
    many.push_str("Parameters:\n");
    for i in 0..201 {
        many.push_str(&format!("  P{i}:\n    Type: String\n"));
    }
    many.push_str("Mappings:\n");
    for i in 0..201 {
        many.push_str(&format!("  M{i}:\n    K: {{V: x}}\n"));
    }
    many.push_str(&format!("  {}:\n    K: {{V: x}}\n", "N".repeat(256)));
    many.push_str(&format!("Description: {}\n", "d".repeat(1025)));
    check_parse(
        &many,
        expect![[r#"
            t.yaml:2:3: Resources: quota: 501 resources exceed the quota of 500
            t.yaml:1005:3: Outputs: quota: 201 outputs exceed the quota of 200
            t.yaml:1408:3: Parameters: quota: 201 parameters exceed the quota of 200
            t.yaml:1811:3: Mappings: quota: 202 mappings exceed the quota of 200
            t.yaml:2213:3: Mappings.NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN: quota: the name is 256 characters, over the quota of 255
            t.yaml:2215:14: Description: quota: the description is 1025 bytes, over the quota of 1024"#]],
    );
}

#[test]
fn transforms_are_reported_not_run() {
    check_parse(
        "Transform: [AWS::Serverless-2016-10-31, MyMacro, AWS::Include, AWS::LanguageExtensions]\nResources: {}\n",
        expect![[r#"
            t.yaml:1:13: Transform: unsupported-transform: the SAM transform (AWS::Serverless-2016-10-31) is not supported; deploy the transformed template instead
            t.yaml:1:41: Transform: macro: the macro `MyMacro` is not supported (macros run account code)
            t.yaml:1:50: Transform: unsupported-transform: the transform `AWS::Include` is not supported"#]],
    );
    check_parse(
        "Resources:\n  M:\n    Type: AWS::S3::Bucket\n    Properties: !Rain::Embed file.txt\n",
        expect![[r#"
            t.yaml:4:17: rain-directive: !Rain::Embed is a Rain directive; package the template with `rain pkg` first
            t.yaml:4:17: Resources.M.Properties: structure: Properties must be a mapping, found a string"#]],
    );
}
