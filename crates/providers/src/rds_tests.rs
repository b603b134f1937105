//! The RDS providers through a stack engine on the fake kernel (no root): what they decide
//! before anything is launched. The engine itself (bake, boot, psql) is tested as root in
//! `spindle-rds`'s and the CLI's root tests.

use std::sync::Arc;

use spindle_runtime::{FakeKernel, MemoryDoc, Runtime, RuntimeConfig, StateDoc};
use spindle_stack::{
    DeployRequest, Engine, EngineOptions, MemoryJournal, OperationOutcome, ProviderRegistry,
    StackStatus,
};
use spindle_template::{parse, plan, Context, PlanInput};

use crate::{Ec2, Rds};

struct Fx {
    _dir: tempfile::TempDir,
    engine: Engine,
    doc: Arc<dyn StateDoc>,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::new());
    let mut cfg = RuntimeConfig::new(dir.path().join("data"), "spxr");
    cfg.cgroup_root = dir.path().join("cg");
    cfg.host_dir = dir.path().join("host");
    let rt = Runtime::open(cfg, kernel).unwrap();
    let ec2 = Ec2::open(rt, None).unwrap();
    let doc: Arc<dyn StateDoc> = Arc::new(MemoryDoc::default());
    let rds = Rds::open_with(ec2.clone(), Some(doc.clone()), dir.path().join("rds")).unwrap();
    let mut registry = ProviderRegistry::new();
    ec2.register(&mut registry);
    rds.register(&mut registry);
    let engine = Engine::new(
        Arc::new(MemoryJournal::new()),
        registry,
        EngineOptions::default(),
    );
    Fx {
        _dir: dir,
        engine,
        doc,
    }
}

async fn deploy(fx: &Fx, stack: &str, src: &str) -> OperationOutcome {
    let template = parse(src, "stack.yaml").unwrap();
    let input = PlanInput {
        context: Context::new("123456789012", "eu-west-1", stack),
        ..PlanInput::default()
    };
    let planned = plan(&template, &input).unwrap();
    fx.engine.deploy(DeployRequest::new(planned)).await.unwrap()
}

const NETWORK: &str = "
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.20.0.0/16}}
  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.30.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.20.1.0/24}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.20.2.0/24}}
  C: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Other, CidrBlock: 10.30.1.0/24}}
";

#[tokio::test]
async fn a_subnet_group_is_named_by_its_ref_recorded_and_refused_across_vpcs() {
    let fx = fixture();
    let good = format!(
        "{NETWORK}  Group:
    Type: AWS::RDS::DBSubnetGroup
    Properties: {{DBSubnetGroupName: App-DB, DBSubnetGroupDescription: db, SubnetIds: [!Ref A, !Ref B]}}
Outputs:
  Name: {{Value: !Ref Group}}
"
    );
    let out = deploy(&fx, "ok", &good).await;
    assert_eq!(out.status, StackStatus::CreateComplete, "{:?}", out.reason);
    let v = fx.engine.stack("ok").unwrap();
    let name = v
        .deployed
        .outputs
        .iter()
        .find(|o| o.name == "Name")
        .unwrap();
    assert_eq!(name.value.scalar_string().unwrap(), "app-db");
    let saved = String::from_utf8(fx.doc.load().unwrap().unwrap()).unwrap();
    assert!(saved.contains("\"app-db\""), "{saved}");

    let split = format!(
        "{NETWORK}  Group:
    Type: AWS::RDS::DBSubnetGroup
    Properties: {{DBSubnetGroupDescription: db, SubnetIds: [!Ref A, !Ref C]}}
"
    );
    let out = deploy(&fx, "split", &split).await;
    assert_eq!(out.status, StackStatus::RollbackComplete);
    let why = format!("{:?}", out.reason);
    assert!(why.contains("several VPCs"), "{why}");
}

#[tokio::test]
async fn a_db_instance_names_a_missing_subnet_group_before_launching_anything() {
    let fx = fixture();
    let src = format!(
        "{NETWORK}  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: postgres
      DBInstanceClass: db.t3.micro
      MasterUsername: app
      MasterUserPassword: correct-horse
      DBSubnetGroupName: nosuch
"
    );
    let out = deploy(&fx, "db", &src).await;
    assert_eq!(out.status, StackStatus::RollbackComplete);
    let why = format!("{:?}", out.reason);
    assert!(why.contains("DB subnet group nosuch"), "{why}");
    assert!(!why.contains("correct-horse"), "{why}");
}
