//! Apply-time resolution and change-set classification.

use std::collections::BTreeMap;

use expect_test::{expect, Expect};
use spindle_template::changeset::DeployedResource;
use spindle_template::{
    classify, parse, plan, MapResolver, NoExternal, Plan, PlanInput, ResourceSchemas, StackState,
    Value,
};

fn plan_of(src: &str, params: &[(&str, &str)]) -> Plan {
    let t = parse(src, "t.yaml").unwrap();
    let input = PlanInput {
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PlanInput::default()
    };
    plan(&t, &input).unwrap_or_else(|d| panic!("{d}"))
}

/// Deploys a plan the way an executor would: in topological order, each resource resolved
/// with the ids and attributes of those before it. Ids are `<name>-<generation>`, and every
/// resource has an `Arn` attribute.
fn deploy(p: &Plan, generation: u32) -> StackState {
    let mut res = MapResolver::default();
    let mut state = StackState::default();
    for name in p.graph.topo_order().unwrap() {
        let r = p
            .resolve_resource(name, &res, &NoExternal)
            .unwrap_or_else(|d| panic!("{d}"));
        let id = format!("{}-{generation}", name.to_lowercase());
        let arn = Value::String(format!("arn:{id}"));
        res.physical_ids.insert(name.to_string(), id.clone());
        res.attributes
            .insert((name.to_string(), "Arn".into()), arn.clone());
        let attrs = BTreeMap::from([("Arn".to_string(), arn)]);
        state.resources.insert(
            name.to_string(),
            DeployedResource::from_resolved(&r, &id, attrs),
        );
    }
    state
}

fn check(old: (&str, &[(&str, &str)]), new: (&str, &[(&str, &str)]), expect: Expect) {
    let old_state = deploy(&plan_of(old.0, old.1), 1);
    let new_plan = plan_of(new.0, new.1);
    let cs = classify(
        &old_state,
        &new_plan,
        ResourceSchemas::bundled(),
        &NoExternal,
    )
    .unwrap();
    expect.assert_eq(cs.render().trim_end());
}

const BASE: &str = r#"
Parameters:
  Cidr: {Type: String, Default: 10.0.0.0/16}
  Type: {Type: String, Default: t3.micro}
  Pw: {Type: String, Default: old-secret, NoEcho: true}
  Extra: {Type: String, Default: 'no'}
Conditions:
  WithExtra: !Equals [!Ref Extra, 'yes']
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: !Ref Cidr
      Tags: [{Key: Name, Value: main}]
  Subnet:
    Type: AWS::EC2::Subnet
    Properties:
      VpcId: !Ref Vpc
      CidrBlock: !Select [0, !Cidr [!Ref Cidr, 4, 8]]
  Web:
    Type: AWS::EC2::Instance
    Properties:
      SubnetId: !Ref Subnet
      InstanceType: !Ref Type
      ImageId: ami-1
      UserData: {Fn::Base64: !Sub 'pw=${Pw}'}
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: web
      AssumeRolePolicyDocument: {Statement: []}
      Description: !GetAtt Vpc.Arn
  Topic:
    Type: AWS::SNS::Topic
    Condition: WithExtra
"#;

#[test]
fn apply_time_resolution_uses_physical_ids() {
    let p = plan_of(BASE, &[]);
    let st = deploy(&p, 1);
    let web = &st.resources["Web"];
    expect![[r#"{"ImageId":"ami-1","InstanceType":"t3.micro","SubnetId":"subnet-1","UserData":"cHc9b2xkLXNlY3JldA=="}"#]]
        .assert_eq(&Value::Map(web.properties.clone()).to_json_string());
    assert!(web.sensitive.contains("UserData"));
    assert!(!web.sensitive.contains("ImageId"));
    // At plan time the same property is unknown, waiting for Subnet.
    expect![[r#""{{unknown:Subnet}}""#]]
        .assert_eq(&p.resource("Web").unwrap().properties["SubnetId"].to_string());
    // A resolver that lacks a dependency is an error at apply time.
    let err = p
        .resolve_resource("Web", &MapResolver::default(), &NoExternal)
        .unwrap_err();
    expect!["t.yaml:23:17: Resources.Web.Properties.SubnetId.Ref: evaluation: resource `Subnet` has no physical id yet"]
        .assert_eq(err.to_string().lines().nth(1).unwrap().trim());
    let outs = p
        .resolve_outputs(&MapResolver::default(), &NoExternal)
        .unwrap();
    assert!(outs.is_empty());
}

#[test]
fn no_change_is_an_empty_change_set() {
    check((BASE, &[]), (BASE, &[]), expect![""]);
}

#[test]
fn in_place_modification() {
    let new = BASE.replace("Value: main", "Value: renamed");
    check(
        (BASE, &[]),
        (&new, &[]),
        expect![[r#"
            Modify Vpc (AWS::EC2::VPC) replacement=False
              Properties.Tags: [{"Key":"Name","Value":"main"}] -> [{"Key":"Name","Value":"renamed"}] recreation=False
            Modify Role (AWS::IAM::Role) replacement=False
              Properties.Description: "arn:vpc-1" -> {{dynamic}} recreation=False via Vpc.Arn"#]],
    );
}

#[test]
fn replacement_cascades_as_conditional() {
    check(
        (BASE, &[]),
        (BASE, &[("Cidr", "10.1.0.0/16")]),
        expect![[r#"
            Modify Vpc (AWS::EC2::VPC) replacement=True
              Properties.CidrBlock: "10.0.0.0/16" -> "10.1.0.0/16" recreation=True
            Modify Subnet (AWS::EC2::Subnet) replacement=True
              Properties.CidrBlock: "10.0.0.0/24" -> "10.1.0.0/24" recreation=True
              Properties.VpcId: "vpc-1" -> {{dynamic}} recreation=Conditional via Vpc
            Modify Web (AWS::EC2::Instance) replacement=Conditional
              Properties.SubnetId: "subnet-1" -> {{dynamic}} recreation=Conditional via Subnet
            Modify Role (AWS::IAM::Role) replacement=False
              Properties.Description: "arn:vpc-1" -> {{dynamic}} recreation=False via Vpc.Arn"#]],
    );
}

#[test]
fn no_echo_values_are_masked_in_details() {
    check(
        (BASE, &[]),
        (BASE, &[("Pw", "new-secret"), ("Type", "m5.large")]),
        expect![[r#"
            Modify Web (AWS::EC2::Instance) replacement=False
              Properties.InstanceType: "t3.micro" -> "m5.large" recreation=False
              Properties.UserData: **** -> **** recreation=False"#]],
    );
}

#[test]
fn add_remove_and_attribute_changes() {
    let new = BASE
        .replace("      RoleName: web\n", "      RoleName: web2\n")
        .replace("  Role:\n    Type: AWS::IAM::Role\n", "  Role:\n    Type: AWS::IAM::Role\n    DeletionPolicy: Retain\n")
        .replace("  Web:\n    Type: AWS::EC2::Instance\n    Properties:\n      SubnetId: !Ref Subnet\n      InstanceType: !Ref Type\n      ImageId: ami-1\n      UserData: {Fn::Base64: !Sub 'pw=${Pw}'}\n", "");
    check(
        (BASE, &[]),
        (&new, &[("Extra", "yes")]),
        expect![[r#"
            Modify Role (AWS::IAM::Role) replacement=True
              Properties.RoleName: "web" -> "web2" recreation=True
              Attributes.DeletionPolicy: "Delete" -> "Retain" recreation=False
            Add Topic (AWS::SNS::Topic)
            Remove Web (AWS::EC2::Instance)"#]],
    );
}

#[test]
fn bundled_schema_table_is_well_formed() {
    let s = ResourceSchemas::bundled();
    assert!(s.types.len() >= 150, "only {} types", s.types.len());
    assert!(s.source.contains("cfn-lint"));
    for (name, t) in &s.types {
        assert_eq!(name.split("::").count(), 3, "{name}");
        assert!(
            !t.primary_identifier.is_empty(),
            "{name} has no primary identifier"
        );
        for p in t.create_only.iter().chain(&t.read_only) {
            assert!(
                !p.is_empty() && !p.starts_with('/') && !p.contains("//"),
                "{name}: {p}"
            );
        }
    }
    let inst = s.get("AWS::EC2::Instance").unwrap();
    assert!(inst.create_only.contains(&"ImageId".to_string()));
    assert!(!inst.create_only.contains(&"InstanceType".to_string()));
    for t in [
        "AWS::EC2::VPC",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::SSM::Parameter",
        "AWS::Route53::RecordSet",
        "AWS::IAM::Role",
        "AWS::S3::Bucket",
        "AWS::Lambda::Function",
    ] {
        assert!(s.get(t).is_some(), "{t} missing");
    }
}

#[test]
fn removes_go_dependents_first() {
    let new = "Resources:\n  Keep:\n    Type: AWS::SNS::Topic\n";
    check(
        (BASE, &[]),
        (new, &[]),
        expect![[r#"
            Add Keep (AWS::SNS::Topic)
            Remove Web (AWS::EC2::Instance)
            Remove Subnet (AWS::EC2::Subnet)
            Remove Role (AWS::IAM::Role)
            Remove Vpc (AWS::EC2::VPC)"#]],
    );
    let st = deploy(&plan_of(BASE, &[]), 1);
    assert_eq!(
        st.graph().reverse_order().unwrap(),
        ["Web", "Subnet", "Role", "Vpc"]
    );
}

#[test]
fn no_echo_metadata_is_masked() {
    let src = |v: &str| {
        format!("Parameters:\n  S: {{Type: String, NoEcho: true, Default: {v}}}\nResources:\n  T:\n    Type: AWS::SNS::Topic\n    Metadata: {{Token: !Ref S}}\n")
    };
    check(
        (&src("a"), &[]),
        (&src("b"), &[]),
        expect![[r#"
        Modify T (AWS::SNS::Topic) replacement=False
          Attributes.Metadata: **** -> **** recreation=False"#]],
    );
}

#[test]
fn stack_state_and_change_sets_round_trip_through_json() {
    let st = deploy(&plan_of(BASE, &[]), 1);
    let text = serde_json::to_string(&st).unwrap();
    let back: StackState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, st);
    let p = plan_of(BASE, &[("Cidr", "10.1.0.0/16")]);
    let cs = classify(&back, &p, ResourceSchemas::bundled(), &NoExternal).unwrap();
    let json = serde_json::to_value(&cs).unwrap();
    assert_eq!(json["changes"][0]["replacement"], "True");
    assert_eq!(json["changes"][0]["details"][0]["name"], "CidrBlock");
}
