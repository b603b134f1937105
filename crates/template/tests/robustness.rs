//! No input makes the reader, validator or planner panic. The seed's resources with made-up
//! properties use `Custom::*` types; `Tg` is a registry type, so mutations also reach the
//! registry-schema checks.

use proptest::prelude::*;
use spindle_template::{parse, plan, synthetic_template, PlanInput};

fn run(src: &str) {
    if let Ok(t) = parse(src, "fuzz") {
        let _ = plan(&t, &PlanInput::default());
    }
}

const SEED: &str = r#"AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::LanguageExtensions
Parameters:
  P: {Type: CommaDelimitedList, Default: 'a,b'}
  N: {Type: Number, Default: 2, MinValue: 1}
Mappings:
  M: {a: {k: v}}
Conditions:
  C: !Equals [!Select [0, !Ref P], a]
  D: !Not [!Condition C]
Rules:
  R:
    Assertions:
      - Assert: !Contains [[a, b], !Select [1, !Ref P]]
Resources:
  Fn::ForEach::L:
    - X
    - !Ref P
    - Q${X}:
        Type: Custom::Queue
        Properties: {Name: !Sub '${X}-${AWS::Region}', Len: {'Fn::Length': !Ref P}}
  V:
    Type: Custom::Vpc
    Condition: C
    Properties:
      CidrBlock: !Select [0, !Cidr [10.0.0.0/16, !Ref N, 8]]
      Tags: [{Key: k, Value: !If [D, !Ref AWS::NoValue, !FindInMap [M, a, k]]}]
      J: !ToJsonString {a: !GetAtt Qa.Arn}
      B: !Base64 {'Fn::Join': ['', [!Ref Qb, x]]}
  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {Port: 80, Protocol: HTTP, Targets: [{Id: i-1, Port: !Ref N}], Matcher: {HttpCode: '200'}, Tags: [{Key: k, Value: v}]}
Outputs:
  O: {Value: !Ref V, Export: {Name: !Sub '${AWS::StackName}-v'}}
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        run(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_yaml_like_text(s in "[a-zA-Z0-9:!\\[\\]{}, \n\\-'\"${}.&*<>|#]{0,300}") {
        run(&s);
    }

    #[test]
    fn mutated_template(pos in 0usize..SEED.len(), len in 0usize..20, insert in "[!:\\[\\]{}\n -'${}.A-Za-z0-9]{0,8}") {
        let mut s = SEED.to_string();
        let start = pos.min(s.len());
        let end = (start + len).min(s.len());
        if s.is_char_boundary(start) && s.is_char_boundary(end) {
            s.replace_range(start..end, &insert);
        }
        run(&s);
    }

    #[test]
    fn mutated_json(pos in 0usize..200, insert in "[\\[\\]{}:,\"\\\\0-9a-z ]{0,6}") {
        let t = parse(SEED, "seed").unwrap();
        let mut s = t.root.to_json().to_string();
        let p = pos.min(s.len());
        s.insert_str(p, &insert);
        run(&s);
    }
}

#[test]
fn the_seed_itself_plans() {
    let t = parse(SEED, "seed").unwrap();
    let p = plan(&t, &PlanInput::default()).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<&str> = p.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Qa", "Qb", "V", "Tg"]);
    assert_eq!(p.graph.topo_order().unwrap(), ["Qa", "Qb", "V", "Tg"]);
}

#[test]
fn synthetic_templates_are_valid() {
    for n in [1, 2, 10, 500] {
        let src = synthetic_template(n);
        let t = parse(&src, "synthetic").unwrap_or_else(|d| panic!("{d}"));
        let p = plan(
            &t,
            &PlanInput {
                validate: spindle_template::ValidateOptions {
                    max_body_bytes: spindle_template::template::quota::S3_BODY_BYTES,
                    ..Default::default()
                },
                ..PlanInput::default()
            },
        )
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(p.resources.len() + p.skipped.len(), n);
        assert_eq!(p.graph.topo_order().unwrap().len(), p.resources.len());
    }
}

#[test]
fn long_condition_chains_do_not_recurse() {
    // Declared in reverse order: each condition refers to the next one.
    let mut src = String::from("Conditions:\n");
    for i in 0..5000 {
        src.push_str(&format!("  C{i}: !Not [!Condition C{}]\n", i + 1));
    }
    src.push_str(
        "  C5000: !Equals [a, a]\nResources:\n  R:\n    Type: AWS::SNS::Topic\n    Condition: C0\n",
    );
    let t = parse(&src, "chain").unwrap();
    let input = PlanInput {
        validate: spindle_template::ValidateOptions {
            max_body_bytes: spindle_template::template::quota::S3_BODY_BYTES,
            ..Default::default()
        },
        ..PlanInput::default()
    };
    let p = plan(&t, &input).unwrap_or_else(|d| panic!("{d}"));
    assert!(p.conditions["C0"]);
    assert!(!p.conditions["C1"]);
    assert_eq!(p.resources.len(), 1);
}

/// Compile-time check: the server keeps templates, plans and stack state in shared state.
const _: () = {
    const fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<spindle_template::Template>();
    send_sync::<spindle_template::Plan>();
    send_sync::<spindle_template::StackState>();
    send_sync::<spindle_template::ChangeSet>();
    send_sync::<spindle_template::Diagnostics>();
};
