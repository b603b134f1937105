//! Resource properties checked against the registry schema of their type (issue #15 part 1):
//! one `check` helper, each case a template fragment and the diagnostics it must give.

use expect_test::{expect, Expect};
use spindle_template::{parse, validate, Category, ValidateOptions};

/// Validates `resources` (the body of a `Resources:` section) and renders the property
/// diagnostics one per line as `line:col path: message`.
fn check(resources: &str, want: Expect) {
    let src = format!("Parameters:\n  P: {{Type: String}}\nConditions:\n  C: !Equals [!Ref P, x]\nResources:\n{resources}");
    let t = parse(&src, "t.yaml").unwrap_or_else(|d| panic!("{d}"));
    let got: Vec<String> = validate(&t, &ValidateOptions::default())
        .iter()
        .map(|d| {
            assert_eq!(d.category, Category::Property, "{d}");
            format!("{}:{} {}: {}", d.pos.line, d.pos.col, d.path, d.message)
        })
        .collect();
    want.assert_eq(&got.join("\n"));
}

/// The template of issue #15's "Why" (shared with the CLI's tests).
const ISSUE_15: &str = include_str!("data/issue15.yaml");

#[test]
fn the_template_of_issue_15_gives_both_schema_errors_at_once() {
    // The third mistake (a misspelt `spindle.tenant.*` attribute) is the load balancer
    // provider's rule, tested with the providers and the CLI.
    let t = parse(ISSUE_15, "issue15.yaml").unwrap();
    let got: Vec<String> = validate(&t, &ValidateOptions::default())
        .iter()
        .map(|d| d.to_string())
        .collect();
    expect![[r#"
        issue15.yaml:4:19: Resources.Vpc.Properties.CidrBlok: property: unknown property `CidrBlok` for AWS::EC2::VPC; did you mean `CidrBlock`?
        issue15.yaml:8:13: Resources.Tg.Properties.Port: property: Port must be an integer, not the string "eighty""#]]
    .assert_eq(&got.join("\n"));
}

#[test]
fn scalars_convert_as_cloudformation_converts_them() {
    check(
        r#"  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: "80"
      HealthCheckEnabled: "true"
      HealthCheckPort: 8080
      HealthCheckIntervalSeconds: 30
"#,
        expect![[""]],
    );
}

#[test]
fn missing_required_properties() {
    check(
        r#"  Sub:
    Type: AWS::EC2::Subnet
    Properties:
      CidrBlock: 10.0.0.0/24
  Param:
    Type: AWS::SSM::Parameter
"#,
        expect![[r#"
            9:7 Resources.Sub.Properties: missing required property `VpcId`
            10:3 Resources.Param.Properties: AWS::SSM::Parameter requires property `Value`, and the resource has no Properties
            10:3 Resources.Param.Properties: AWS::SSM::Parameter requires property `Type`, and the resource has no Properties"#]],
    );
}

#[test]
fn enums_lengths_ranges_and_nested_definitions() {
    check(
        r#"  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Protocol: HTTPX
      HealthyThresholdCount: 11
      HealthCheckPath: ""
      Matcher: { HttpCode: "200", Grpc: "0" }
      Targets:
        - { Id: i-1, Port: 70000 }
        - { Port: 80 }
      Tags:
        - { Key: "bad key!", Value: v }
"#,
        expect![[r#"
            9:17 Resources.Tg.Properties.Protocol: Protocol must be one of GENEVE, HTTP, HTTPS, QUIC, TCP, TCP_QUIC, TCP_UDP, TLS, UDP, not `HTTPX`; did you mean `HTTP`?
            10:30 Resources.Tg.Properties.HealthyThresholdCount: HealthyThresholdCount must be at most 10, is 11
            11:24 Resources.Tg.Properties.HealthCheckPath: HealthCheckPath must be at least 1 character(s) long, is 0
            12:35 Resources.Tg.Properties.Matcher.Grpc: unknown property `Grpc` for `Matcher`
            14:28 Resources.Tg.Properties.Targets.0.Port: Port must be at most 65535, is 70000
            15:11 Resources.Tg.Properties.Targets.1: missing required property `Id`
            17:18 Resources.Tg.Properties.Tags.0.Key: Key `bad key!` does not match the pattern ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"#]],
    );
}

#[test]
fn wrong_shapes() {
    check(
        r#"  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: [10.0.0.0/16]
      Tags: { Key: a, Value: b }
      EnableDnsSupport: maybe
"#,
        expect![[r#"
            9:18 Resources.Vpc.Properties.CidrBlock: CidrBlock must be a string, not a list
            10:13 Resources.Vpc.Properties.Tags: Tags must be a list, not a mapping
            11:25 Resources.Vpc.Properties.EnableDnsSupport: EnableDnsSupport must be a boolean, not the string "maybe""#]],
    );
}

#[test]
fn values_known_only_at_deploy_time_are_not_checked() {
    check(
        r#"  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: !Ref P
      Protocol: !Sub "${P}"
      HealthCheckPath: "{{resolve:ssm:/app/health}}"
      Targets: !Split [",", !Ref P]
      Tags:
        - !If [C, {Key: a, Value: b}, !Ref AWS::NoValue]
  Vpc:
    Type: AWS::EC2::VPC
    Properties: !If [C, {CidrBlock: 10.0.0.0/16}, {CidrBlock: 10.1.0.0/16}]
"#,
        expect![[""]],
    );
}

#[test]
fn both_branches_of_an_if_are_checked() {
    check(
        r#"  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: !If [C, 80, eighty]
"#,
        expect![[
            r#"9:25 Resources.Tg.Properties.Port: Port must be an integer, not the string "eighty""#
        ]],
    );
}

#[test]
fn unknown_types_and_custom_resources_are_left_alone() {
    check(
        r#"  A:
    Type: Custom::Thing
    Properties: { Anything: [1, 2], ServiceToken: arn }
  B:
    Type: AWS::CloudFormation::CustomResource
    Properties: { ServiceToken: arn, Extra: 1 }
"#,
        expect![[""]],
    );
}

#[test]
fn the_non_specific_tag_is_read_as_yaml_1_2_says() {
    // `!` on a flow-mapping key and on values: a plain string, mapping or sequence.
    let src = "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: ! String\n      Value: { ! \"Ref\": \"AWS::AccountId\" }\n      Description: ! 12\n";
    let t = parse(src, "t.yaml").unwrap_or_else(|d| panic!("{d}"));
    let p = t.resource("P").unwrap().properties.as_ref().unwrap();
    assert_eq!(
        p.dump(false),
        r#"{Type: "String", Value: !Ref("AWS::AccountId"), Description: "12"}"#
    );
    assert!(validate(&t, &ValidateOptions::default()).is_empty());
}

#[test]
fn spindles_dialect_is_accepted_and_nothing_beyond_it() {
    // Percentile statistics, the inline alarm, and one-second health checks are Spindle's;
    // a made-up statistic, the alarm on another type, and a zero interval are not.
    check(
        r#"  Latency:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: g
      PolicyType: TargetTrackingScaling
      TargetTrackingConfiguration:
        TargetValue: 0.25
        CustomizedMetricSpecification: {Namespace: AWS/ApplicationELB, MetricName: TargetResponseTime, Statistic: p95}
  Step:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: g
      PolicyType: StepScaling
      SpindleAlarm: {Metric: ASGAverageCPUUtilization, ComparisonOperator: GreaterThanThreshold, Threshold: 80}
  Bad:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: g
      TargetTrackingConfiguration:
        TargetValue: 1
        CustomizedMetricSpecification: {Namespace: N, MetricName: M, Statistic: p42}
  Fast:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {HealthCheckIntervalSeconds: 2, HealthCheckTimeoutSeconds: 1}
  TooFast:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {HealthCheckIntervalSeconds: 0, SpindleAlarm: x}
"#,
        expect![[r#"
            26:81 Resources.Bad.Properties.TargetTrackingConfiguration.CustomizedMetricSpecification.Statistic: Statistic must be one of Average, Maximum, Minimum, SampleCount, Sum, not `p42`
            32:46 Resources.TooFast.Properties.HealthCheckIntervalSeconds: HealthCheckIntervalSeconds must be at least 1, is 0
            32:49 Resources.TooFast.Properties.SpindleAlarm: unknown property `SpindleAlarm` for AWS::ElasticLoadBalancingV2::TargetGroup"#]],
    );
}
