//! The RDS resources' properties, parsed once into typed records, every problem at once with
//! its property path.

use spindle_rds::boot::{check_identifier, RESERVED_USERS};
use spindle_template::Value;

use crate::props::{Problems, Props, Shape};
use crate::Kind;

pub(crate) const SUBNET_GROUP: Shape = Shape {
    type_name: "AWS::RDS::DBSubnetGroup",
    used: &["DBSubnetGroupName", "DBSubnetGroupDescription", "SubnetIds"],
    ignored: &["Tags"],
    hints: &[],
};

const LATER: &str = "not built yet (issue #20)";

pub(crate) const DB_INSTANCE: Shape = Shape {
    type_name: "AWS::RDS::DBInstance",
    used: &[
        "Engine",
        "EngineVersion",
        "DBInstanceClass",
        "DBInstanceIdentifier",
        "MasterUsername",
        "MasterUserPassword",
        "ManageMasterUserPassword",
        "DBName",
        "Port",
        "AllocatedStorage",
        "DBSubnetGroupName",
        "VPCSecurityGroups",
        "DeletionProtection",
        "MultiAZ",
        "DBSnapshotIdentifier",
    ],
    ignored: &[
        "Tags",
        "BackupRetentionPeriod",
        "PreferredBackupWindow",
        "PreferredMaintenanceWindow",
        "StorageType",
        "StorageEncrypted",
        "PubliclyAccessible",
        "AutoMinorVersionUpgrade",
        "AllowMajorVersionUpgrade",
        "CopyTagsToSnapshot",
        "EnablePerformanceInsights",
        "MonitoringInterval",
        "AvailabilityZone",
        "CACertificateIdentifier",
        "MasterUserSecret",
    ],
    hints: &[
        ("SourceDBInstanceIdentifier", LATER),
        ("RestoreTime", LATER),
        ("UseLatestRestorableTime", LATER),
        ("DBParameterGroupName", LATER),
        ("DBSecurityGroups", "use VPCSecurityGroups"),
    ],
};

/// What a DB instance changes in place. `EngineVersion`: the spec admits only Debian's
/// major version, so a change is a minor one, which the running engine already is.
pub(crate) const IN_PLACE: &[&str] = &[
    "DeletionProtection",
    "AllocatedStorage",
    "Tags",
    "EngineVersion",
];

/// The PostgreSQL major version Debian's `postgresql` is (bookworm: 15).
pub(crate) const POSTGRES_MAJOR: &str = "15";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubnetGroupSpec {
    pub name: Option<String>,
    pub subnet_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DbInstanceSpec {
    pub identifier: Option<String>,
    /// The runtime's instance type (`DBInstanceClass` without `db.`).
    pub instance_type: String,
    /// `None` only with `snapshot`: a restored instance keeps the snapshot's users.
    pub master_user: Option<String>,
    pub password: Option<String>,
    /// `ManageMasterUserPassword: true`: Spindle generates the password and keeps it in a
    /// Secrets Manager secret the instance owns (`password` is then `None`).
    pub manage_password: bool,
    /// `DBSnapshotIdentifier`: restore this snapshot's data.
    pub snapshot: Option<String>,
    pub db_name: Option<String>,
    pub port: u16,
    pub allocated_storage: u32,
    pub subnet_group: String,
    pub security_groups: Vec<String>,
    pub deletion_protection: bool,
}

fn opt_bool(s: &Shape, p: &Props, key: &str) -> Result<Option<bool>, crate::Ec2Error> {
    match s.opt_str(p, key)?.as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(s.invalid(format!("{key} must be true or false, got {other}"))),
    }
}

/// AWS's rule for `DBInstanceIdentifier`: at most 63 characters.
pub(crate) fn check_db_identifier(id: &str) -> Result<(), String> {
    spindle_rds::volume::check_aws_identifier(id, 63)
}

impl SubnetGroupSpec {
    pub fn parse(p: &Props) -> Result<Self, String> {
        let s = &SUBNET_GROUP;
        let mut problems = Problems::new(Kind::DbSubnetGroup);
        problems.unknown("", s, p);
        let name = problems
            .take("", s.opt_str(p, "DBSubnetGroupName"))
            .flatten()
            .map(|n| n.to_ascii_lowercase());
        if let Some(n) = &name {
            let ok = n.len() <= 255
                && !n.is_empty()
                && n != "default"
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c));
            if !ok {
                problems.add(
                    "DBSubnetGroupName",
                    format!("`{n}` must hold only letters, digits, spaces, `.`, `_` and `-` (at most 255) and not be `default`"),
                );
            }
        }
        problems.take("", s.req_str(p, "DBSubnetGroupDescription"));
        let subnet_ids = problems
            .take("", s.str_list(p, "SubnetIds"))
            .unwrap_or_default();
        if subnet_ids.is_empty() {
            problems.add("SubnetIds", "at least one subnet is required");
        }
        problems.finish(Some(SubnetGroupSpec { name, subnet_ids }))
    }
}

impl DbInstanceSpec {
    pub fn parse(p: &Props) -> Result<Self, String> {
        let s = &DB_INSTANCE;
        let mut problems = Problems::new(Kind::DbInstance);
        problems.unknown("", s, p);
        match problems.take("", s.req_str(p, "Engine")).as_deref() {
            None | Some("postgres") => {}
            Some(e @ ("mariadb" | "mysql")) => problems.add(
                "Engine",
                format!("`{e}` is not built yet; Spindle runs `postgres` (Debian's PostgreSQL {POSTGRES_MAJOR})"),
            ),
            Some(other) => problems.add(
                "Engine",
                format!("`{other}` is not supported; expected postgres"),
            ),
        }
        if let Some(v) = problems.take("", s.opt_str(p, "EngineVersion")).flatten() {
            if v.split('.').next() != Some(POSTGRES_MAJOR) {
                problems.add(
                    "EngineVersion",
                    format!("`{v}`: Spindle runs Debian's PostgreSQL {POSTGRES_MAJOR}; give {POSTGRES_MAJOR} or {POSTGRES_MAJOR}.x, or leave it out"),
                );
            }
        }
        let class = problems.take("", s.req_str(p, "DBInstanceClass"));
        let instance_type = class.and_then(|c| {
            let t = c.strip_prefix("db.").unwrap_or(&c).to_string();
            if spindle_runtime::instance_type(&t).is_ok() {
                Some(t)
            } else {
                let names: Vec<String> = spindle_runtime::INSTANCE_TYPES
                    .iter()
                    .map(|t| format!("db.{}", t.name))
                    .collect();
                problems.add(
                    "DBInstanceClass",
                    format!(
                        "`{c}` is not an instance class Spindle has; expected one of {}",
                        names.join(", ")
                    ),
                );
                None
            }
        });
        let identifier = problems
            .take("", s.opt_str(p, "DBInstanceIdentifier"))
            .flatten()
            .map(|i| i.to_ascii_lowercase());
        if let Some(Err(e)) = identifier.as_deref().map(check_db_identifier) {
            problems.add("DBInstanceIdentifier", e);
        }
        let manage_password = problems
            .take("", opt_bool(s, p, "ManageMasterUserPassword"))
            .flatten()
            == Some(true);
        let snapshot = problems
            .take("", s.opt_str(p, "DBSnapshotIdentifier"))
            .flatten();
        if let Some(Err(e)) = snapshot
            .as_deref()
            .map(spindle_rds::volume::check_snapshot_id)
        {
            problems.add("DBSnapshotIdentifier", e);
        }
        let (master_user, password) = if snapshot.is_some() {
            for k in ["MasterUsername", "MasterUserPassword", "DBName"] {
                if !matches!(p.get(k), None | Some(Value::Null | Value::NoValue)) {
                    problems.add(
                        k,
                        "not with DBSnapshotIdentifier: a restored instance keeps the snapshot's users, passwords and databases",
                    );
                }
            }
            (Some(None), Some(None))
        } else {
            let user = problems.take("", s.req_str(p, "MasterUsername")).map(Some);
            let password = if manage_password {
                if !matches!(
                    p.get("MasterUserPassword"),
                    None | Some(Value::Null | Value::NoValue)
                ) {
                    problems.add(
                        "MasterUserPassword",
                        "not with ManageMasterUserPassword: true (Spindle generates the password and keeps it in the instance's secret)",
                    );
                }
                Some(None)
            } else {
                problems
                    .take("", s.req_str(p, "MasterUserPassword"))
                    .map(Some)
            };
            (user, password)
        };
        if manage_password && snapshot.is_some() {
            problems.add(
                "ManageMasterUserPassword",
                "not with DBSnapshotIdentifier: a restored instance keeps the snapshot's users and passwords",
            );
        }
        if let Some(Some(u)) = &master_user {
            if let Err(e) = check_identifier(u) {
                problems.add("MasterUsername", e);
            } else if RESERVED_USERS.contains(&u.to_ascii_lowercase().as_str()) {
                problems.add("MasterUsername", format!("`{u}` is reserved by the engine"));
            }
        }
        if let Some(Some(pw)) = &password {
            // AWS's rule: 8–128 printable ASCII characters other than `/`, `"`, `@` and space.
            let ok = (8..=128).contains(&pw.len())
                && pw
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"/\"@".contains(c));
            if !ok {
                problems.add(
                    "MasterUserPassword",
                    "must be 8 to 128 printable ASCII characters other than `/`, `\"`, `@` and space",
                );
            }
        }
        let db_name = problems.take("", s.opt_str(p, "DBName")).flatten();
        if let Some(Err(e)) = db_name.as_deref().map(check_identifier) {
            problems.add("DBName", e);
        }
        let port = match problems.take("", s.opt_int(p, "Port")).flatten() {
            None => Some(5432),
            Some(n) if (1150..=65535).contains(&n) => Some(n as u16),
            Some(n) => {
                problems.add("Port", format!("{n} is outside 1150-65535"));
                None
            }
        };
        let allocated_storage = match problems
            .take("", s.opt_int(p, "AllocatedStorage"))
            .flatten()
        {
            None => Some(20),
            Some(n) if (20..=65536).contains(&n) => Some(n as u32),
            Some(n) => {
                problems.add(
                    "AllocatedStorage",
                    format!("{n} GiB is outside 20-65536 (PostgreSQL on gp2/gp3)"),
                );
                None
            }
        };
        let subnet_group = problems
            .take("", s.opt_str(p, "DBSubnetGroupName"))
            .flatten();
        if subnet_group.is_none() {
            problems.add(
                "DBSubnetGroupName",
                "is required: Spindle has no default VPC (name an AWS::RDS::DBSubnetGroup)",
            );
        }
        let security_groups = problems
            .take("", s.str_list(p, "VPCSecurityGroups"))
            .unwrap_or_default();
        if problems.take("", opt_bool(s, p, "MultiAZ")).flatten() == Some(true) {
            problems.add("MultiAZ", format!("a standby instance is {LATER}"));
        }
        let deletion_protection = problems
            .take("", opt_bool(s, p, "DeletionProtection"))
            .flatten()
            .unwrap_or(false);
        let spec = match (
            instance_type,
            master_user,
            password,
            port,
            allocated_storage,
            subnet_group,
        ) {
            (
                Some(instance_type),
                Some(master_user),
                Some(password),
                Some(port),
                Some(allocated_storage),
                Some(subnet_group),
            ) => Some(DbInstanceSpec {
                identifier,
                snapshot,
                instance_type,
                master_user,
                password,
                manage_password,
                db_name,
                port,
                allocated_storage,
                subnet_group: subnet_group.to_ascii_lowercase(),
                security_groups,
                deletion_protection,
            }),
            _ => None,
        };
        problems.finish(spec)
    }
}

/// `Value` for an integer attribute.
pub(crate) fn int_value(n: u32) -> Value {
    Value::String(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_template::Value;

    fn props(pairs: &[(&str, Value)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn good() -> Props {
        props(&[
            ("Engine", s("postgres")),
            ("DBInstanceClass", s("db.t3.micro")),
            ("MasterUsername", s("app")),
            ("MasterUserPassword", s("correct-horse")),
            ("DBName", s("shop")),
            ("DBSubnetGroupName", s("Db-Subnets")),
        ])
    }

    #[test]
    fn a_minimal_postgres_instance_gets_aws_defaults() {
        let spec = DbInstanceSpec::parse(&good()).unwrap();
        assert_eq!(spec.instance_type, "t3.micro");
        assert_eq!(spec.port, 5432);
        assert_eq!(spec.allocated_storage, 20);
        assert_eq!(spec.subnet_group, "db-subnets");
        assert!(!spec.deletion_protection);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_property() {
        let mut p = good();
        for (k, v) in [
            ("Engine", s("oracle-ee")),
            ("DBInstanceClass", s("db.r7.huge")),
            ("MasterUsername", s("1app")),
            ("MasterUserPassword", s("short")),
            ("DBName", s("my-db")),
            ("Port", s("80")),
            ("AllocatedStorage", s("5")),
            ("MultiAZ", s("true")),
            ("EngineVersion", s("16.1")),
            ("DBInstanceIdentifier", s("db--1")),
        ] {
            p.insert(k.into(), v);
        }
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        for want in [
            "Engine: `oracle-ee` is not supported; expected postgres",
            "DBInstanceClass: `db.r7.huge` is not an instance class",
            "MasterUsername: `1app` must begin with a letter",
            "MasterUserPassword: must be 8 to 128",
            "DBName: `my-db` must begin with a letter",
            "Port: 80 is outside 1150-65535",
            "AllocatedStorage: 5 GiB is outside 20-65536",
            "MultiAZ: a standby instance is not built yet",
            "EngineVersion: `16.1`",
            "DBInstanceIdentifier: `db--1`",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
        assert!(!e.contains("short"), "the password is never echoed: {e}");
    }

    #[test]
    fn a_restore_names_its_snapshot_and_keeps_the_snapshots_users() {
        let mut p = good();
        p.insert("DBSnapshotIdentifier".into(), s("db1-final-7"));
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        for k in ["MasterUsername", "MasterUserPassword", "DBName"] {
            assert!(
                e.contains(&format!("{k}: not with DBSnapshotIdentifier")),
                "{k}: {e}"
            );
        }
        for k in ["MasterUsername", "MasterUserPassword", "DBName"] {
            p.remove(k);
        }
        let spec = DbInstanceSpec::parse(&p).unwrap();
        assert_eq!(spec.snapshot.as_deref(), Some("db1-final-7"));
        assert_eq!((spec.master_user, spec.password), (None, None));
        p.insert("DBSnapshotIdentifier".into(), s("snap--1"));
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        assert!(e.contains("DBSnapshotIdentifier: `snap--1`"), "{e}");
    }

    #[test]
    fn a_managed_password_is_generated_so_none_may_be_given() {
        let mut p = good();
        p.insert("ManageMasterUserPassword".into(), s("true"));
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        assert!(
            e.contains("MasterUserPassword: not with ManageMasterUserPassword: true"),
            "{e}"
        );
        assert!(
            !e.contains("correct-horse"),
            "the password is never echoed: {e}"
        );
        p.remove("MasterUserPassword");
        let spec = DbInstanceSpec::parse(&p).unwrap();
        assert!(spec.manage_password);
        assert_eq!(spec.password, None);
        assert_eq!(spec.master_user.as_deref(), Some("app"));
        assert!(!DbInstanceSpec::parse(&good()).unwrap().manage_password);
        p.remove("MasterUsername");
        p.remove("DBName");
        p.insert("DBSnapshotIdentifier".into(), s("snap-1"));
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        assert!(
            e.contains("ManageMasterUserPassword: not with DBSnapshotIdentifier"),
            "{e}"
        );
    }

    #[test]
    fn a_minor_engine_version_change_is_in_place_and_a_major_is_refused() {
        let why = "in place";
        DB_INSTANCE
            .check_update(&["EngineVersion".into()], IN_PLACE, why)
            .unwrap();
        let e = DB_INSTANCE
            .check_update(&["EngineVersion".into(), "Port".into()], IN_PLACE, why)
            .unwrap_err();
        assert!(e.to_string().contains("Port"), "{e}");
        let mut p = good();
        p.insert("EngineVersion".into(), s("15.6"));
        DbInstanceSpec::parse(&p).unwrap();
        p.insert("EngineVersion".into(), s("16"));
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        assert!(
            e.contains("EngineVersion: `16`: Spindle runs Debian's PostgreSQL 15"),
            "{e}"
        );
    }

    #[test]
    fn mariadb_and_mysql_are_refused_by_name() {
        let mut p = good();
        p.insert("Engine".into(), s("mysql"));
        let e = DbInstanceSpec::parse(&p).unwrap_err();
        assert!(e.contains("Engine: `mysql` is not built yet"), "{e}");
    }

    #[test]
    fn a_subnet_group_needs_subnets_and_a_description() {
        let e = SubnetGroupSpec::parse(&props(&[("DBSubnetGroupName", s("default"))])).unwrap_err();
        for want in [
            "not be `default`",
            "DBSubnetGroupDescription is required",
            "SubnetIds: at least one subnet",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
        let ok = SubnetGroupSpec::parse(&props(&[
            ("DBSubnetGroupDescription", s("db")),
            ("SubnetIds", Value::List(vec![s("subnet-1"), s("subnet-2")])),
        ]))
        .unwrap();
        assert_eq!(
            ok,
            SubnetGroupSpec {
                name: None,
                subnet_ids: vec!["subnet-1".into(), "subnet-2".into()]
            }
        );
    }
}
