//! Validation and plan-time evaluation: every intrinsic, conditions, parameters, rules.
//! Resources whose properties only exercise evaluation use `Custom::*` types, which have no
//! registry schema; the registry-schema checks are tested in `properties.rs`.

use expect_test::{expect, Expect};
use spindle_template::{parse, plan, Context, ExternalResolver, PlanInput, ValidateOptions};

struct Account;
impl ExternalResolver for Account {
    fn ssm_parameter(&self, name: &str) -> Option<String> {
        match name {
            "/ami/latest" => Some("ami-0abc".into()),
            "/app/zones" => Some("z1,z2".into()),
            _ => None,
        }
    }
    fn import_value(&self, name: &str) -> Option<String> {
        (name == "net-VpcId").then(|| "vpc-imported".into())
    }
    fn check_aws_value(&self, ty: &str, value: &str) -> Result<(), String> {
        if ty == "AWS::EC2::KeyPair::KeyName" && value != "ops" {
            return Err(format!("key pair `{value}` does not exist"));
        }
        Ok(())
    }
    fn value_of(&self, _ty: &str, value: &str, attr: &str) -> Option<String> {
        (attr == "VpcId").then(|| {
            if value == "subnet-2" {
                "vpc-b".into()
            } else {
                "vpc-a".into()
            }
        })
    }
}

fn render_plan(
    src: &str,
    params: &[(&str, &str)],
    supported: Option<&dyn Fn(&str) -> bool>,
) -> String {
    let t = match parse(src, "t.yaml") {
        Ok(t) => t,
        Err(d) => {
            return d
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let input = PlanInput {
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        context: Context::new("111122223333", "eu-west-1", "demo"),
        external: &Account,
        validate: ValidateOptions {
            supported_type: supported,
            ..ValidateOptions::default()
        },
    };
    match plan(&t, &input) {
        Err(d) => d
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(p) => {
            let mut s = String::new();
            for (k, v) in p.rendered_parameters() {
                s.push_str(&format!("param {k} = {v}\n"));
            }
            for (k, v) in &p.conditions {
                s.push_str(&format!("cond {k} = {v}\n"));
            }
            for r in &p.resources {
                let deps = if r.dependencies.is_empty() {
                    String::new()
                } else {
                    format!(" after [{}]", r.dependencies.join(", "))
                };
                s.push_str(&format!("{} {}{deps}\n", r.name, r.type_name));
                for (k, v) in r.rendered_properties() {
                    s.push_str(&format!("  {k}: {v}\n"));
                }
            }
            for r in &p.skipped {
                s.push_str(&format!("skipped {r}\n"));
            }
            for o in &p.outputs {
                s.push_str(&format!("output {} = {}\n", o.name, o.rendered_value()));
            }
            s
        }
    }
}

fn check(src: &str, params: &[(&str, &str)], expect: Expect) {
    expect.assert_eq(render_plan(src, params, None).trim_end());
}

const HEAD: &str = "AWSTemplateFormatVersion: '2010-09-09'\n";

#[test]
fn pseudo_parameters() {
    check(
        &format!(
            "{HEAD}Resources:\n  T:\n    Type: Custom::Topic\n    Properties:\n      A: !Ref AWS::AccountId\n      B: !Ref AWS::Region\n      C: !Ref AWS::StackName\n      D: !Ref AWS::StackId\n      E: !Ref AWS::Partition\n      F: !Ref AWS::URLSuffix\n      G: !Ref AWS::NotificationARNs\n      H: !Ref AWS::NoValue\n      I: [a, !Ref AWS::NoValue, b]\n"
        ),
        &[],
        expect![[r#"
            T Custom::Topic
              A: "111122223333"
              B: "eu-west-1"
              C: "demo"
              D: "arn:aws:cloudformation:eu-west-1:111122223333:stack/demo/00000000-0000-0000-0000-000000000000"
              E: "aws"
              F: "amazonaws.com"
              G: []
              I: ["a","b"]"#]],
    );
}

#[test]
fn every_intrinsic_at_plan_time() {
    check(
        &format!(
            r#"{HEAD}Parameters:
  Env: {{Type: String, Default: prod}}
  Subnets: {{Type: CommaDelimitedList, Default: "s1, s2,s3"}}
Mappings:
  Sizes:
    prod: {{Type: m5.large}}
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
  T:
    Type: Custom::Topic
    Properties:
      Ref: !Ref Vpc
      GetAtt: !GetAtt Vpc.CidrBlock
      Sub: !Sub '${{AWS::Region}}-${{Env}}-${{!Literal}}-${{Vpc}}'
      SubKnown: !Sub ['${{A}}/${{Env}}/${{AWS::StackName}}', {{A: !Select [1, !Ref Subnets]}}]
      SubAttr: !Sub '${{Vpc.CidrBlock}}'
      SubLiteral: !Sub 'a-${{!Literal}}-${{AWS::Region}}-${{!Env}}-${{Env}}-${{'
      Join: !Join [':', [a, !Ref Env, !Select [2, !Ref Subnets]]]
      JoinUnknown: !Join [':', [a, !Ref Vpc]]
      Select: !Select ['0', !GetAZs '']
      AZsOther: !GetAZs us-east-2
      Split: !Split ['/', 'a/b//c']
      If: !If [IsProd, yes-prod, no]
      Find: !FindInMap [Sizes, !Ref Env, Type]
      Import: !ImportValue net-VpcId
      Base64: !Base64 'hello, world'
      Cidr: !Cidr [10.1.0.0/16, 3, 12]
      CidrV6: !Cidr ['2001:db8::/56', 2, 64]
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Outputs:
  Id:
    Value: !Ref Vpc
"#
        ),
        &[],
        expect![[r#"
            param Env = prod
            param Subnets = s1, s2,s3
            cond IsProd = true
            Vpc AWS::EC2::VPC
              CidrBlock: "10.0.0.0/16"
            T Custom::Topic after [Vpc]
              AZsOther: ["us-east-2a","us-east-2b","us-east-2c"]
              Base64: "aGVsbG8sIHdvcmxk"
              Cidr: ["10.1.0.0/20","10.1.16.0/20","10.1.32.0/20"]
              CidrV6: ["2001:db8::/64","2001:db8:0:1::/64"]
              Find: "m5.large"
              GetAtt: "{{unknown:Vpc.CidrBlock}}"
              If: "yes-prod"
              Import: "vpc-imported"
              Join: "a:prod:s3"
              JoinUnknown: "{{unknown:Vpc}}"
              Ref: "{{unknown:Vpc}}"
              Select: "eu-west-1a"
              Split: ["a","b","","c"]
              Sub: "{{unknown:Vpc}}"
              SubAttr: "{{unknown:Vpc.CidrBlock}}"
              SubKnown: "s2/prod/demo"
              SubLiteral: "a-${Literal}-eu-west-1-${Env}-prod-${"
            output Id = "{{unknown:Vpc}}""#]],
    );
}

#[test]
fn conditions_and_resource_conditions() {
    check(
        &format!(
            r#"{HEAD}Parameters:
  Env: {{Type: String, Default: dev, AllowedValues: [dev, prod]}}
  Size: {{Type: Number, Default: 3}}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  Big: !Equals [!Ref Size, 3]
  Both: !And [!Condition IsDev, !Condition Big]
  Either: !Or [!Condition IsProd, !Equals [a, b], !Condition Both]
  NumberEq: !Equals [3, !Ref Size]
Resources:
  ProdOnly:
    Type: Custom::Topic
    Condition: IsProd
  DevOnly:
    Type: Custom::Topic
    Condition: Both
    Properties:
      Name: !If [IsProd, !Ref ProdOnly, dev-topic]
      Opt: !If [Either, !Ref AWS::NoValue, x]
Outputs:
  P:
    Condition: IsProd
    Value: !Ref ProdOnly
  D:
    Value: !If [IsDev, !GetAtt DevOnly.TopicName, none]
"#
        ),
        &[],
        expect![[r#"
            param Env = dev
            param Size = 3
            cond Big = true
            cond Both = true
            cond Either = true
            cond IsDev = true
            cond IsProd = false
            cond NumberEq = true
            DevOnly Custom::Topic
              Name: "dev-topic"
            skipped ProdOnly
            output D = "{{unknown:DevOnly.TopicName}}""#]],
    );
}

#[test]
fn reference_to_a_resource_whose_condition_is_false() {
    check(
        &format!(
            "{HEAD}Parameters:\n  On: {{Type: String, Default: 'false'}}\nConditions:\n  C: !Equals [!Ref On, 'true']\nResources:\n  A:\n    Type: Custom::Topic\n    Condition: C\n  B:\n    Type: Custom::Topic\n    DependsOn: A\n    Properties:\n      Name: !Ref A\n"
        ),
        &[],
        expect![[r#"
            t.yaml:14:13: Resources.B.Properties.Name.Ref: unknown-reference: `A` is not created (its condition is false)
            t.yaml:12:16: Resources.B.DependsOn: unknown-reference: DependsOn names `A`, which is not created (its condition is false)"#]],
    );
}

#[test]
fn parameter_types_and_constraints() {
    let src = format!(
        r#"{HEAD}Parameters:
  Name: {{Type: String, MinLength: 3, MaxLength: 5, AllowedPattern: '[a-z]+', ConstraintDescription: lowercase}}
  Count: {{Type: Number, MinValue: 1, MaxValue: 10}}
  Ports: {{Type: 'List<Number>', MaxValue: 65535}}
  Names: {{Type: CommaDelimitedList, AllowedValues: [a, b, c]}}
  Vpc: {{Type: 'AWS::EC2::VPC::Id'}}
  Subnets: {{Type: 'List<AWS::EC2::Subnet::Id>'}}
  Key: {{Type: 'AWS::EC2::KeyPair::KeyName'}}
  Ami: {{Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>', Default: /ami/latest}}
  Zones: {{Type: 'AWS::SSM::Parameter::Value<List<String>>', Default: /app/zones}}
  Password: {{Type: String, NoEcho: true, MinLength: 8}}
Resources:
  T:
    Type: Custom::Topic
    Properties:
      All: [!Ref Name, !Ref Count, !Ref Ports, !Ref Names, !Ref Vpc, !Ref Subnets, !Ref Key, !Ref Ami, !Ref Zones]
      Secret: !Sub 'pw=${{Password}}'
      Plain: !Ref Name
Outputs:
  Pw:
    Value: !Ref Password
"#
    );
    let good = [
        ("Name", "abc"),
        ("Count", "10"),
        ("Ports", "80,443"),
        ("Names", "a,c"),
        ("Vpc", "vpc-1"),
        ("Subnets", "subnet-1,subnet-2"),
        ("Key", "ops"),
        ("Password", "s3cretpass"),
    ];
    check(
        &src,
        &good,
        expect![[r#"
            param Ami = /ami/latest
            param Count = 10
            param Key = ops
            param Name = abc
            param Names = a,c
            param Password = ****
            param Ports = 80,443
            param Subnets = subnet-1,subnet-2
            param Vpc = vpc-1
            param Zones = /app/zones
            T Custom::Topic
              All: ["abc","10",["80","443"],["a","c"],"vpc-1",["subnet-1","subnet-2"],"ops","ami-0abc",["z1","z2"]]
              Plain: "abc"
              Secret: ****
            output Pw = ****"#]],
    );
    let bad = [
        ("Name", "ABCDEFG"),
        ("Count", "11"),
        ("Ports", "80,x,70000"),
        ("Names", "a,d"),
        ("Vpc", "sg-1"),
        ("Subnets", "subnet-1,vpc-2"),
        ("Key", "nobody"),
        ("Password", "short"),
        ("Extra", "1"),
    ];
    check(
        &src,
        &bad,
        expect![[r#"
        t.yaml:3:3: Parameters.Name: parameter: value is longer than MaxLength 5 (lowercase)
        t.yaml:3:3: Parameters.Name: parameter: `ABCDEFG` does not match AllowedPattern [a-z]+ (lowercase)
        t.yaml:4:3: Parameters.Count: parameter: `11` is greater than MaxValue 10
        t.yaml:5:3: Parameters.Ports: parameter: `x` is not a number
        t.yaml:5:3: Parameters.Ports: parameter: `70000` is greater than MaxValue 65535
        t.yaml:6:3: Parameters.Names: parameter: `d` is not one of the AllowedValues [a, b, c]
        t.yaml:7:3: Parameters.Vpc: parameter: `sg-1` is not a valid AWS::EC2::VPC::Id (expected vpc-...)
        t.yaml:8:3: Parameters.Subnets: parameter: `vpc-2` is not a valid AWS::EC2::Subnet::Id (expected subnet-...)
        t.yaml:9:3: Parameters.Key: parameter: key pair `nobody` does not exist
        t.yaml:12:3: Parameters.Password: parameter: value is shorter than MinLength 8
        t.yaml:0:0: Parameters: parameter: parameter `Extra` is supplied but the template does not declare it"#]],
    );
    check(
        &src,
        &[],
        expect![[r#"
        t.yaml:3:3: Parameters.Name: parameter: parameter `Name` needs a value (it has no Default)
        t.yaml:4:3: Parameters.Count: parameter: parameter `Count` needs a value (it has no Default)
        t.yaml:5:3: Parameters.Ports: parameter: parameter `Ports` needs a value (it has no Default)
        t.yaml:6:3: Parameters.Names: parameter: parameter `Names` needs a value (it has no Default)
        t.yaml:7:3: Parameters.Vpc: parameter: parameter `Vpc` needs a value (it has no Default)
        t.yaml:8:3: Parameters.Subnets: parameter: parameter `Subnets` needs a value (it has no Default)
        t.yaml:9:3: Parameters.Key: parameter: parameter `Key` needs a value (it has no Default)
        t.yaml:12:3: Parameters.Password: parameter: parameter `Password` needs a value (it has no Default)"#]],
    );
}

#[test]
fn rules_with_rule_functions() {
    let src = format!(
        r#"{HEAD}Parameters:
  Env: {{Type: String, Default: test}}
  Size: {{Type: String, Default: small}}
  Subnets: {{Type: 'List<AWS::EC2::Subnet::Id>', Default: 'subnet-1,subnet-2'}}
  Vpc: {{Type: 'AWS::EC2::VPC::Id', Default: vpc-a}}
Rules:
  ProdIsLarge:
    RuleCondition: !Equals [!Ref Env, prod]
    Assertions:
      - Assert: !Contains [[large, xlarge], !Ref Size]
        AssertDescription: prod needs a large size
  SameVpc:
    Assertions:
      - Assert: !EachMemberEquals [!ValueOf [Subnets, VpcId], !Ref Vpc]
        AssertDescription: all subnets must be in the VPC
      - Assert: !EachMemberIn [[small], [small, large]]
Resources:
  T: {{Type: Custom::Topic}}
"#
    );
    check(&src, &[("Subnets", "subnet-1,subnet-2")], expect!["t.yaml:15:17: Rules.SameVpc.Assertions.0: rule: rule `SameVpc` failed: all subnets must be in the VPC"]);
    check(
        &src,
        &[("Env", "prod")],
        expect![[r#"
        t.yaml:11:17: Rules.ProdIsLarge.Assertions.0: rule: rule `ProdIsLarge` failed: prod needs a large size
        t.yaml:15:17: Rules.SameVpc.Assertions.0: rule: rule `SameVpc` failed: all subnets must be in the VPC"#]],
    );
}

#[test]
fn all_problems_at_once_with_positions_and_paths() {
    check(
        &format!(
            r#"{HEAD}Conditions:
  C: !Equals [!Ref Nope, x]
  Loop1: !Condition Loop2
  Loop2: !And [!Condition Loop1, !Condition C]
Resources:
  Web:
    Type: Custom::Instance
    DependsOn: [Ghost]
    Condition: Missing
    Properties:
      ImageId: !Ref Image
      SubnetId: !GetAtt Net.SubnetId
      UserData: !Sub '${{Who}} ${{Web2.Ip}} ${{AWS::Region}}'
      A: !Join [',']
      B: !Select [0, notalist]
      C: !If [NoSuchCond, 1, 2]
      E: {{"Fn::Nope": x}}
      F: !And [!Condition C]
      G: !FindInMap [NoMap, a, b]
      H: !Length [1, 2]
      I: !Ref [a]
      J: !Transform {{Name: MyMacro}}
  Other:
    Type: AWS::Serverless::Function
  Mod:
    Type: My::Thing::MODULE
Outputs:
  O:
    Value: !GetAtt Web.PublicIp
    Condition: AlsoMissing
"#
        ),
        &[],
        expect![[r#"
            t.yaml:3:15: Conditions.C.Fn::Equals.Ref: unknown-reference: Ref to unknown parameter `Nope`
            t.yaml:10:16: Resources.Web.Condition: unknown-condition: unknown condition `Missing`
            t.yaml:9:17: Resources.Web.DependsOn: unknown-reference: DependsOn names unknown resource `Ghost`
            t.yaml:12:16: Resources.Web.Properties.ImageId.Ref: unknown-reference: Ref to unknown parameter or resource `Image`
            t.yaml:13:17: Resources.Web.Properties.SubnetId.Fn::GetAtt: unknown-reference: GetAtt on unknown resource `Net`
            t.yaml:14:17: Resources.Web.Properties.UserData.Fn::Sub: unknown-reference: Ref to unknown parameter or resource `Who`
            t.yaml:14:17: Resources.Web.Properties.UserData.Fn::Sub: unknown-reference: GetAtt on unknown resource `Web2`
            t.yaml:15:10: Resources.Web.Properties.A.Fn::Join: intrinsic: Fn::Join takes 2 arguments, got 1
            t.yaml:16:22: Resources.Web.Properties.B.Fn::Select: intrinsic: Fn::Select expects a list here, got a string
            t.yaml:17:15: Resources.Web.Properties.C.Fn::If: unknown-condition: unknown condition `NoSuchCond`
            t.yaml:18:10: Resources.Web.Properties.E.Fn::Nope: intrinsic: unknown intrinsic function `Fn::Nope`
            t.yaml:19:10: Resources.Web.Properties.F.Fn::And: intrinsic: Fn::And takes 2 to 10 arguments, got 1
            t.yaml:20:22: Resources.Web.Properties.G.Fn::FindInMap: unknown-reference: Fn::FindInMap names unknown mapping `NoMap`
            t.yaml:21:10: Resources.Web.Properties.H.Fn::Length: intrinsic: Fn::Length needs `Transform: AWS::LanguageExtensions`
            t.yaml:22:10: Resources.Web.Properties.I.Ref: intrinsic: Ref takes a name (a string)
            t.yaml:23:10: Resources.Web.Properties.J.Fn::Transform: macro: Fn::Transform `MyMacro` is not supported
            t.yaml:25:11: Resources.Other.Type: unsupported-transform: `AWS::Serverless::Function` is a SAM type; SAM templates are not supported
            t.yaml:27:11: Resources.Mod.Type: unsupported-transform: `My::Thing::MODULE` is a CloudFormation module; modules are not supported
            t.yaml:31:16: Outputs.O.Condition: unknown-condition: unknown condition `AlsoMissing`
            t.yaml:4:10: Conditions: cycle: circular condition references: Loop1, Loop2"#]],
    );
}

#[test]
fn supported_types_hook() {
    let src = format!("{HEAD}Resources:\n  A:\n    Type: AWS::EC2::VPC\n  B:\n    Type: AWS::RDS::DBInstance\n  C:\n    Type: Custom::Thing\n");
    let ok = |t: &str| t.starts_with("AWS::EC2::") || t.starts_with("Custom::");
    expect!["t.yaml:6:11: Resources.B.Type: unsupported-resource-type: resource type `AWS::RDS::DBInstance` is not supported by this installation"].assert_eq(render_plan(&src, &[], Some(&ok)).trim_end());
}

#[test]
fn dependency_cycles_name_every_member() {
    check(
        &format!(
            "{HEAD}Resources:\n  A:\n    Type: X::Y::Z\n    Properties: {{P: !Ref B}}\n  B:\n    Type: X::Y::Z\n    Properties: {{P: !GetAtt C.Arn}}\n  C:\n    Type: X::Y::Z\n    Properties: {{P: !Sub '${{A}}'}}\n  D:\n    Type: X::Y::Z\n    DependsOn: D\n  E:\n    Type: X::Y::Z\n    DependsOn: A\n"
        ),
        &[],
        expect![[r#"
            t.yaml:3:3: Resources.A: cycle: circular dependency between resources: A, B, C
            t.yaml:12:3: Resources.D: cycle: circular dependency between resources: D"#]],
    );
}

#[test]
fn language_extensions() {
    check(
        r#"Transform: AWS::LanguageExtensions
Parameters:
  Names: {Type: CommaDelimitedList, Default: 'a,b-c'}
Mappings:
  M:
    a: {K: from-map}
Resources:
  Fn::ForEach::Topics:
    - Name
    - !Ref Names
    - Topic&{Name}:
        Type: Custom::Topic
        Properties:
          TopicName: !Sub 'topic-${Name}'
          Raw: !Ref Name
          Found: !FindInMap [M, !Ref Name, K, {DefaultValue: default}]
  Q:
    Type: Custom::Queue
    Properties:
      Count: !Length [1, 2, 3]
      CountParam: {Fn::Length: !Ref Names}
      Json: !ToJsonString {b: [1, true], a: x}
Outputs:
  Fn::ForEach::Out:
    - Name
    - [a, bc]
    - Fn::ForEach::Inner:
        - Attr
        - [Arn, Name]
        - ${Name}${Attr}:
            Value: !Sub '${Name}-${Attr}'
"#,
        &[],
        expect![[r#"
            param Names = a,b-c
            Topica Custom::Topic
              Found: "from-map"
              Raw: "a"
              TopicName: "topic-a"
            Topicbc Custom::Topic
              Found: "default"
              Raw: "b-c"
              TopicName: "topic-b-c"
            Q Custom::Queue
              Count: 3
              CountParam: 2
              Json: "{\"a\":\"x\",\"b\":[1,true]}"
            output aArn = a-Arn
            output aName = a-Name
            output bcArn = bc-Arn
            output bcName = bc-Name"#]],
    );
    check(
        "Resources:\n  Fn::ForEach::X:\n    - N\n    - [a]\n    - R${N}: {Type: Custom::Topic}\n  Q:\n    Type: Custom::Queue\n    Properties:\n      C: !Length [1]\n",
        &[],
        expect![[r#"
            t.yaml:2:3: Resources.Fn::ForEach::X: intrinsic: Fn::ForEach needs `Transform: AWS::LanguageExtensions`
            t.yaml:9:10: Resources.Q.Properties.C.Fn::Length: intrinsic: Fn::Length needs `Transform: AWS::LanguageExtensions`"#]],
    );
}

#[test]
fn shared_namespace_and_duplicate_exports() {
    check(
        &format!(
            "{HEAD}Parameters:\n  Web: {{Type: String, Default: x}}\nResources:\n  Web:\n    Type: Custom::Topic\n  Other:\n    Type: Custom::Topic\nOutputs:\n  A:\n    Value: !Ref Other\n    Export: {{Name: !Sub '${{AWS::StackName}}-x'}}\n  B:\n    Value: !Ref Other\n    Export: {{Name: demo-x}}\n"
        ),
        &[],
        expect!["t.yaml:5:3: Resources.Web: structure: `Web` is declared both as a parameter and as a resource"],
    );
    check(
        &format!(
            "{HEAD}Resources:\n  Other:\n    Type: Custom::Topic\nOutputs:\n  A:\n    Value: !Ref Other\n    Export: {{Name: !Sub '${{AWS::StackName}}-x'}}\n  B:\n    Value: !Ref Other\n    Export: {{Name: demo-x}}\n"
        ),
        &[],
        expect!["t.yaml:9:3: Outputs.B: structure: export name `demo-x` is also exported by output `A`"],
    );
}

#[test]
fn validate_alone_expands_loops_with_defaults() {
    let src = "Transform: AWS::LanguageExtensions\nParameters:\n  Names: {Type: CommaDelimitedList}\nResources:\n  Fn::ForEach::T:\n    - N\n    - !Ref Names\n    - T${N}:\n        Type: Custom::Topic\n        Properties: {Name: !Ref N, Bad: !Ref Missing}\n";
    let t = parse(src, "t.yaml").unwrap();
    let d: Vec<String> = spindle_template::validate(&t, &ValidateOptions::default())
        .iter()
        .map(|d| d.to_string())
        .collect();
    // One copy per synthesized element ("a".."f"), each pointing into the loop body.
    assert_eq!(d.len(), 6, "{d:#?}");
    expect!["t.yaml:10:41: Resources.Ta.Properties.Bad.Ref: unknown-reference: Ref to unknown parameter or resource `Missing`"].assert_eq(&d[0]);
}

#[test]
fn condition_key_outside_conditions_is_literal() {
    check(
        &format!("{HEAD}Conditions:\n  C: !Equals [a, a]\nResources:\n  T:\n    Type: Custom::Topic\n    Properties:\n      Doc: {{Condition: NotACondition}}\n      Other: !If [C, {{Condition: C}}, x]\n"),
        &[],
        expect![[r#"
            cond C = true
            T Custom::Topic
              Doc: {"Condition":"NotACondition"}
              Other: {"Condition":"C"}"#]],
    );
}
