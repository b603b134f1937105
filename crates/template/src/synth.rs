//! Synthetic templates for benchmarks and tests.

use std::fmt::Write;

/// A valid YAML template with `n` resources that exercises parameters, mappings,
/// conditions, `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If`, `Fn::Select` and
/// `DependsOn`, with a dependency graph of depth about log2(n) plus chains.
pub fn synthetic_template(n: usize) -> String {
    let mut s = String::with_capacity(n * 400 + 1024);
    s.push_str(
        r#"AWSTemplateFormatVersion: '2010-09-09'
Description: synthetic template
Parameters:
  Env:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Cidr:
    Type: String
    Default: 10.0.0.0/16
  Secret:
    Type: String
    Default: hunter2
    NoEcho: true
Mappings:
  Sizes:
    dev: {Instance: t3.micro}
    prod: {Instance: m5.large}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: !Ref Cidr
"#,
    );
    for i in 1..n {
        let parent = if i == 1 {
            "Vpc".to_string()
        } else {
            format!("R{}", i / 2)
        };
        match i % 4 {
            0 => {
                let _ = write!(
                    s,
                    "  R{i}:\n    Type: AWS::EC2::Subnet\n    Properties:\n      VpcId: !Ref Vpc\n      CidrBlock: !Select [{}, !Cidr [!Ref Cidr, 256, 8]]\n      AvailabilityZone: !Select [0, !GetAZs '']\n      Tags:\n        - Key: Name\n          Value: !Sub '${{AWS::StackName}}-subnet-{i}'\n    DependsOn: {parent}\n",
                    i % 256
                );
            }
            1 => {
                let _ = write!(
                    s,
                    "  R{i}:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: !Join ['-', [sg, !Ref Env, '{i}']]\n      VpcId: !Ref Vpc\n      SecurityGroupIngress:\n        - IpProtocol: tcp\n          FromPort: 443\n          ToPort: 443\n          CidrIp: 0.0.0.0/0\n      Tags:\n        - Key: Parent\n          Value: !Ref {parent}\n"
                );
            }
            2 => {
                let _ = write!(
                    s,
                    "  R{i}:\n    Type: AWS::EC2::Instance\n    Properties:\n      ImageId: ami-0123456789abcdef0\n      InstanceType: !FindInMap [Sizes, !Ref Env, Instance]\n      UserData: !Base64 {{'Fn::Sub': 'echo ${{Secret}} ${{{parent}}}'}}\n      Monitoring: !If [IsProd, true, !Ref AWS::NoValue]\n"
                );
            }
            _ => {
                let _ = write!(
                    s,
                    "  R{i}:\n    Type: AWS::SSM::Parameter\n    Condition: NotProd\n    Properties:\n      Type: String\n      Name: !Sub '/synthetic/${{AWS::Region}}/{i}'\n      Value: !GetAtt Vpc.CidrBlock\n"
                );
            }
        }
    }
    s.push_str("Outputs:\n  VpcId:\n    Value: !Ref Vpc\n    Export:\n      Name: !Sub '${AWS::StackName}-vpc'\n");
    s
}
