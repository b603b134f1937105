use super::*;
use crate::image::ImageConfig;
use crate::kernel::FakeKernel;
use crate::net::{Peer, SgRule};
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    kernel: Arc<FakeKernel>,
    rt: Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::new().with_routes(&["192.0.2.0/24", "10.9.0.0/16"]));
    let mut cfg = RuntimeConfig::new(dir.path().join("data"), "spxt");
    cfg.cgroup_root = dir.path().join("cg");
    cfg.host_dir = dir.path().join("host");
    let rt = Runtime::open(cfg, kernel.clone()).unwrap();
    // A tiny image: /bin/busybox with a /bin/sh symlink.
    let mut tb = tar::Builder::new(Vec::new());
    let mut h = crate::image::new_header();
    h.set_size(4);
    h.set_mode(0o755);
    tb.append_data(&mut h, "bin/busybox", &b"\x7fELF"[..])
        .unwrap();
    let mut h = crate::image::new_header();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    tb.append_link(&mut h, "bin/sh", "/bin/busybox").unwrap();
    let tarball = dir.path().join("rootfs.tar");
    fs::write(&tarball, tb.into_inner().unwrap()).unwrap();
    let cfg = ImageConfig {
        cmd: vec!["sh".into()],
        min_memory_mib: 100,
        ..Default::default()
    };
    rt.images().import(&tarball, cfg, Some("tiny:1")).unwrap();
    Fixture {
        _dir: dir,
        kernel,
        rt,
    }
}

fn spec(subnet: &str) -> LaunchSpec {
    LaunchSpec {
        image: "tiny:1".into(),
        instance_type: "t3.small".into(),
        subnet_id: subnet.into(),
        ..Default::default()
    }
}

#[test]
fn vpc_subnet_validation() {
    let f = fixture();
    let e =
        f.rt.create_vpc(Some("vpc-bad"), "10.9.0.0/16")
            .unwrap_err()
            .to_string();
    assert_eq!(
        e,
        "VPC CIDR 10.9.0.0/16 collides with the host's route to 10.9.0.0/16"
    );
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
        .unwrap();
    let e =
        f.rt.create_subnet("vpc-a", Some("subnet-2"), "10.200.1.128/25")
            .unwrap_err()
            .to_string();
    assert_eq!(
        e,
        "subnet 10.200.1.128/25 overlaps subnet subnet-1 (10.200.1.0/24) in VPC vpc-a"
    );
    assert!(f
        .rt
        .create_subnet("vpc-a", Some("subnet-3"), "10.201.1.0/24")
        .unwrap_err()
        .to_string()
        .contains("not inside VPC"));
    let calls = f.kernel.take_calls();
    assert_eq!(calls[0], "netns add spxt-vpc-a");
    assert!(calls.contains(&"sysctl (in spxt-vpc-a) net.ipv4.ip_forward=1".to_string()));
    assert!(
        calls.contains(&"ip -n spxt-vpc-a addr add 10.200.1.1/24 dev br0".to_string()),
        "{calls:#?}"
    );
}

#[test]
fn caller_ids_are_checked_before_anything_is_created() {
    let f = fixture();
    for bad in [
        "vpc-../x",
        "vpc-",
        "VPC-1",
        "vpc-A",
        "subnet-1",
        "vpc-0123456789abcdef01",
    ] {
        let e = f.rt.create_vpc(Some(bad), "10.200.0.0/20").unwrap_err();
        assert!(
            matches!(e, RuntimeError::BadId { kind: "vpc", .. }),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        f.rt.create_vpc(Some("vpc-a/b"), "10.200.0.0/20")
            .unwrap_err()
            .to_string(),
        "vpc id `vpc-a/b` is invalid: expected `vpc-` and 1 to 17 characters of a-z and 0-9"
    );
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    assert!(f
        .rt
        .create_subnet("vpc-a", Some("subnet-x y"), "10.200.1.0/24")
        .is_err());
    assert!(f
        .rt
        .put_security_group("sg_1", "vpc-a", vec![], None)
        .is_err());
    f.rt.create_vpc(Some("vpc-b"), "10.201.0.0/20").unwrap();
    assert!(f
        .rt
        .create_peering(Some("pcx-../a"), "vpc-a", "vpc-b")
        .is_err());
    assert_eq!(f.rt.vpcs().len(), 2);
    assert!(f.rt.peerings().is_empty());
    assert!(f.rt.security_group("sg_1").is_none());
    let calls = f.kernel.take_calls();
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("..") && !c.contains("x y")),
        "{calls:#?}"
    );
}

#[test]
fn delete_vpc_keeps_terminated_instance_records() {
    let f = fixture();
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
        .unwrap();
    let i = f.rt.launch(spec("subnet-1")).unwrap();
    assert!(f
        .rt
        .delete_vpc("vpc-a")
        .unwrap_err()
        .to_string()
        .contains(&i.id));
    f.rt.terminate(&i.id, Duration::from_millis(10)).unwrap();
    f.rt.delete_subnet("subnet-1").unwrap();
    f.rt.delete_vpc("vpc-a").unwrap();
    assert_eq!(
        f.rt.describe(&i.id).unwrap().state,
        InstanceState::Terminated
    );
    assert_eq!(f.rt.list().len(), 1);
}

#[test]
fn failed_vpc_create_leaves_nothing() {
    let f = fixture();
    f.kernel.fail_on("ip_forward");
    assert!(f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").is_err());
    assert!(f.rt.vpcs().is_empty());
    assert!(f
        .kernel
        .take_calls()
        .contains(&"netns del spxt-vpc-a".to_string()));
}

#[test]
fn launch_bad_input_is_refused_with_clear_errors() {
    let f = fixture();
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
        .unwrap();
    let err = |s: LaunchSpec| f.rt.launch(s).unwrap_err().to_string();
    assert_eq!(
        err(LaunchSpec { instance_type: "m9.huge".into(), ..spec("subnet-1") }),
        "unknown instance type `m9.huge`; known types: t3.nano, t3.micro, t3.small, t3.medium, t3.large, t3.xlarge"
    );
    assert!(err(LaunchSpec {
        instance_type: "t3.nano".into(),
        ..spec("subnet-1")
    })
    .contains("gives 64 MiB but image"));
    assert!(err(LaunchSpec {
        command: Some(vec!["httpd".into()]),
        ..spec("subnet-1")
    })
    .contains("entrypoint `httpd` does not exist"));
    assert!(err(LaunchSpec {
        command: Some(vec!["/bin/nope".into()]),
        ..spec("subnet-1")
    })
    .contains("`/bin/nope` does not exist"));
    assert_eq!(err(spec("subnet-9")), "subnet `subnet-9` does not exist");
    assert!(err(LaunchSpec {
        security_groups: vec!["sg-x".into()],
        ..spec("subnet-1")
    })
    .contains("security group `sg-x`"));
    assert!(f.rt.list().is_empty());
}

#[test]
fn launch_plans_network_cgroups_boot_and_rolls_back_on_failure() {
    let f = fixture();
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
        .unwrap();
    f.rt.put_security_group(
        "sg-web",
        "vpc-a",
        vec![SgRule::tcp(80, Peer::Group("sg-web".into()))],
        None,
    )
    .unwrap();
    f.kernel.take_calls();
    let i =
        f.rt.launch(LaunchSpec {
            security_groups: vec!["sg-web".into()],
            user_data: Some("echo hi".into()),
            ..spec("subnet-1")
        })
        .unwrap();
    assert_eq!(i.private_ip.to_string(), "10.200.1.2");
    assert_eq!(i.hostname, "ip-10-200-1-2");
    assert_eq!(
        i.exec_path,
        "/usr/local/sbin/sh".replace("/usr/local/sbin", "/bin")
    );
    let calls = f.kernel.take_calls().join("\n");
    let ns = format!("spxt-{}", i.id);
    assert!(
        calls.contains(&format!(
            "ip -n {ns} link add eth0 address 02:53:0a:c8:01:02 type veth peer name p0 netns spxt-vpc-a"
        )),
        "{calls}"
    );
    assert!(calls.contains(&format!("ip -n {ns} route add default via 10.200.1.1")));
    assert!(
        calls.contains("ip saddr { 10.200.1.2 } tcp dport 80 accept"),
        "group rule includes the member itself: {calls}"
    );
    assert!(calls.contains("cpu.cfs_quota_us = 100000"));
    assert!(calls.contains("run user data"));
    let hosts = fs::read_to_string(f.rt.instance_dir(&i.id).join("upper/etc/hosts")).unwrap();
    assert!(hosts.contains("10.200.1.2\tip-10-200-1-2"));

    // A second member changes the first one's rules.
    let j =
        f.rt.launch(LaunchSpec {
            security_groups: vec!["sg-web".into()],
            ..spec("subnet-1")
        })
        .unwrap();
    let calls = f.kernel.take_calls().join("\n");
    assert!(
        calls.contains(&format!("nft (in spxt-{}):", i.id)),
        "{calls}"
    );
    assert!(calls.contains("ip saddr { 10.200.1.2, 10.200.1.3 } tcp dport 80 accept"));

    // Failing the boot undoes the network and cgroups and frees the address.
    f.kernel.fail_on("spawn instance");
    assert!(f.rt.launch(spec("subnet-1")).is_err());
    let calls = f.kernel.take_calls();
    assert!(
        calls.iter().any(|c| c.starts_with("netns del spxt-i-")),
        "{calls:#?}"
    );
    assert!(calls
        .iter()
        .any(|c| c.starts_with("rmdir ") && c.contains("/memory/spxt/i-")));
    // So does a network that fails while init waits for it: init never runs the image.
    f.kernel.fail_on("route add default");
    let e = f.rt.launch(spec("subnet-1")).unwrap_err();
    assert!(matches!(e, RuntimeError::Kernel(_)), "{e}");
    let calls = f.kernel.take_calls();
    assert!(
        calls.iter().any(|c| c.starts_with("spawn instance")),
        "{calls:#?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("netns del spxt-i-")));
    f.kernel.fail_on("never-matches");
    assert_eq!(
        f.rt.launch(spec("subnet-1"))
            .unwrap()
            .private_ip
            .to_string(),
        "10.200.1.4"
    );

    // Terminate: SIGTERM, then everything goes and the address is free again.
    let t = f.rt.terminate(&j.id, Duration::from_secs(2)).unwrap();
    assert_eq!(t.state, InstanceState::Terminated);
    assert_eq!(t.last_exit.as_ref().unwrap().signal, Some(libc::SIGTERM));
    assert_eq!(
        f.rt.launch(spec("subnet-1"))
            .unwrap()
            .private_ip
            .to_string(),
        "10.200.1.3"
    );
    assert!(f
        .rt
        .delete_vpc("vpc-a")
        .unwrap_err()
        .to_string()
        .contains("still used by"));
}

#[test]
fn state_survives_reopen_and_dead_instances_are_marked_stopped() {
    let f = fixture();
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
        .unwrap();
    let i = f.rt.launch(spec("subnet-1")).unwrap();
    let cfg = f.rt.config().clone();
    // The fake reports no process start times, so the reopened engine finds init gone.
    let again = Runtime::open(cfg, f.kernel.clone()).unwrap();
    let d = again.describe(&i.id).unwrap();
    assert_eq!(d.state, InstanceState::Stopped);
    assert!(d.last_exit.unwrap().reason.contains("daemon restart"));
    assert_eq!(again.vpcs().len(), 1);
}

/// Two engines (data dirs) on one host table: distinct ranges, a terminated instance's
/// range reused by the other, stale entries reconciled away when an engine opens.
#[test]
fn ranges_come_from_the_host_table_shared_by_data_dirs() {
    let f = fixture();
    let host = f.rt.config().host_dir.clone();
    let mut cfg = RuntimeConfig::new(f._dir.path().join("data2"), "spxu");
    cfg.cgroup_root = f._dir.path().join("cg2");
    cfg.host_dir = host.clone();
    let other = Runtime::open(cfg, f.kernel.clone()).unwrap();
    let image = ImageConfig {
        cmd: vec!["sh".into()],
        min_memory_mib: 100,
        ..Default::default()
    };
    other
        .images()
        .import(&f._dir.path().join("rootfs.tar"), image, Some("tiny:1"))
        .unwrap();
    for rt in [&f.rt, &other] {
        rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
        rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
            .unwrap();
    }
    let a1 = f.rt.launch(spec("subnet-1")).unwrap();
    let b1 = other.launch(spec("subnet-1")).unwrap();
    let a2 = f.rt.launch(spec("subnet-1")).unwrap();
    let bases: Vec<u32> = [&a1, &b1, &a2]
        .iter()
        .map(|i| i.userns.unwrap().base)
        .collect();
    let slot = |n: u32| IdRange::slot(n).base;
    assert_eq!(bases, vec![slot(0), slot(1), slot(2)]);
    f.rt.terminate(&a1.id, Duration::from_secs(2)).unwrap();
    let b2 = other.launch(spec("subnet-1")).unwrap();
    assert_eq!(b2.userns.unwrap().base, slot(0), "freed, then reused");
    let table = crate::hostids::HostIds::new(&host);
    let owners = table
        .update(|t| {
            t.entries
                .iter()
                .map(|e| (e.instance.clone(), e.base))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap();
    let want: BTreeMap<String, u32> = [(&b1, 1), (&a2, 2), (&b2, 0)]
        .into_iter()
        .map(|(i, n)| (i.id.clone(), slot(n)))
        .collect();
    assert_eq!(owners, want);
    // A crash between the table and the state file leaves an entry for an instance the
    // data dir doesn't have; the engine frees it when it opens.
    let me = fs::canonicalize(f.rt.config().data_dir.clone()).unwrap();
    table.update(|t| t.allocate(&me, "i-lost")).unwrap();
    let cfg = f.rt.config().clone();
    drop(Runtime::open(cfg, f.kernel.clone()).unwrap());
    let left = table
        .update(|t| t.entries.iter().any(|e| e.instance == "i-lost"))
        .unwrap();
    assert!(!left, "reconciled at open");
    // A data dir that is gone loses its entries at the next allocation anywhere.
    drop(other);
    fs::remove_dir_all(f._dir.path().join("data2")).unwrap();
    let a3 = f.rt.launch(spec("subnet-1")).unwrap();
    assert_eq!(a3.userns.unwrap().base, slot(0));
}

#[test]
fn peering_is_checked_and_widens_both_routers() {
    let f = fixture();
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    f.rt.create_vpc(Some("vpc-b"), "10.200.16.0/20").unwrap();
    f.rt.create_vpc(Some("vpc-c"), "10.200.0.0/22").unwrap();
    assert!(f
        .rt
        .create_peering(None, "vpc-a", "vpc-c")
        .unwrap_err()
        .to_string()
        .contains("overlap"));
    f.kernel.take_calls();
    f.rt.create_peering(Some("pcx-1"), "vpc-a", "vpc-b")
        .unwrap();
    let calls = f.kernel.take_calls().join("\n");
    assert!(
        calls.contains("ip -n spxt-vpc-a link add x0 type veth peer name x0 netns spxt-vpc-b"),
        "{calls}"
    );
    assert!(calls.contains("ip -n spxt-vpc-a route add 10.200.16.0/20 via 169.254.0.2 dev x0"));
    assert!(calls.contains("ip -n spxt-vpc-b route add 10.200.0.0/20 via 169.254.0.1 dev x0"));
    assert!(calls.contains("elements = { 10.200.16.0/20 }"));
    assert!(f
        .rt
        .create_peering(None, "vpc-b", "vpc-a")
        .unwrap_err()
        .to_string()
        .contains("already peered"));
    assert!(f
        .rt
        .create_peering(None, "vpc-b", "vpc-c")
        .unwrap_err()
        .to_string()
        .contains("overlapping"));
}

#[test]
fn users_resolve_from_the_image_passwd() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut tb = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("bin/app", "x"),
        (
            "etc/passwd",
            "root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n",
        ),
    ] {
        let mut h = crate::image::new_header();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        tb.append_data(&mut h, name, body.as_bytes()).unwrap();
    }
    let tarball = dir.path().join("r.tar");
    fs::write(&tarball, tb.into_inner().unwrap()).unwrap();
    let user = |u: &str| {
        let cfg = ImageConfig {
            cmd: vec!["/bin/app".into()],
            user: u.into(),
            ..Default::default()
        };
        let img = f.rt.images().import(&tarball, cfg, None).unwrap();
        f.rt.resolve_user(&img).map_err(|e| e.to_string())
    };
    assert_eq!(user("web"), Ok((1000, 1001)));
    assert_eq!(user("web:7"), Ok((1000, 7)));
    assert_eq!(user("33"), Ok((33, 33)));
    assert!(user("nobody")
        .unwrap_err()
        .contains("user `nobody` is not in image"));
}

#[test]
fn status_file_parsing() {
    assert_eq!(
        parse_status("exit 3\n", WaitOutcome::Gone, false).code,
        Some(3)
    );
    let oom = parse_status("signal 9\n", WaitOutcome::Gone, true);
    assert_eq!(
        (oom.signal, oom.oom_killed, oom.reason.as_str()),
        (Some(9), true, "killed by signal 9 (out of memory)")
    );
    assert!(
        parse_status("boot-failed mount\n", WaitOutcome::Gone, false)
            .reason
            .contains("boot failed at `mount`")
    );
    assert_eq!(
        parse_status("", WaitOutcome::Status(libc::SIGKILL), false).signal,
        Some(9)
    );
}

/// Every body saved, in order (the last one is what `load` returns).
#[derive(Debug, Default)]
struct Saves(Mutex<Vec<Vec<u8>>>);

impl StateDoc for Saves {
    fn name(&self) -> String {
        "saves".into()
    }
    fn load(&self) -> Result<Option<Vec<u8>>, DocError> {
        Ok(self.0.lock().unwrap().last().cloned())
    }
    fn save(&self, body: &[u8]) -> Result<(), DocError> {
        self.0.lock().unwrap().push(body.to_vec());
        Ok(())
    }
}

/// Issue #15: a daemon killed between an intent and its record leaves a namespace (and
/// for an instance cgroups and a process) that no record names. Every state saved while
/// a create was under way names its intent, and opening the engine on it removes what
/// the intent covers and clears it.
#[test]
fn every_intent_a_killed_create_left_is_undone_at_the_next_open() {
    let f = fixture();
    let cfg = f.rt.config().clone();
    let saves = Arc::new(Saves::default());
    let rt = Runtime::open_with(cfg.clone(), f.kernel.clone(), saves.clone()).unwrap();
    rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.1.0/24")
        .unwrap();
    let i = rt.launch(spec("subnet-1")).unwrap();
    let bodies = saves.0.lock().unwrap().clone();
    let states: Vec<State> = bodies
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let pending: Vec<&State> = states.iter().filter(|s| !s.intents.is_empty()).collect();
    let want = [
        ("vpc-a".to_string(), "spxt-vpc-a".to_string()),
        (i.id.clone(), format!("spxt-{}", i.id)),
    ];
    assert_eq!(pending.len(), want.len(), "{pending:?}");
    assert!(states.last().unwrap().intents.is_empty());
    for (st, (id, netns)) in pending.iter().zip(&want) {
        assert_eq!(st.intents.keys().collect::<Vec<_>>(), vec![id]);
        // The intent is saved before the create is recorded.
        assert!(!st.vpcs.contains_key(id) && !st.instances.contains_key(id));
        let body = serde_json::to_vec(st).unwrap();
        let doc = Arc::new(Saves::default());
        doc.save(&body).unwrap();
        f.kernel.take_calls();
        let again = Runtime::open_with(cfg.clone(), f.kernel.clone(), doc.clone()).unwrap();
        let calls = f.kernel.take_calls();
        assert!(
            calls.contains(&format!("netns del {netns}")),
            "{id}: {calls:?}"
        );
        let after: State = serde_json::from_slice(&doc.load().unwrap().unwrap()).unwrap();
        assert!(after.intents.is_empty(), "{id}");
        drop(again);
    }
}

/// Issue #15: a peering saves its intent before the link exists; a state saved while it was
/// under way makes the next open delete the link (and put the routers' policy back), and
/// `doctor` counts the links of peerings and of peering intents as known, and finds one
/// that no record names.
#[test]
fn a_peering_killed_midway_is_undone_at_the_next_open_and_doctor_finds_stray_links() {
    let f = fixture();
    let cfg = f.rt.config().clone();
    let saves = Arc::new(Saves::default());
    let rt = Runtime::open_with(cfg.clone(), f.kernel.clone(), saves.clone()).unwrap();
    rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    rt.create_vpc(Some("vpc-b"), "10.201.0.0/20").unwrap();
    let before = saves.0.lock().unwrap().len();
    let p = rt.create_peering(Some("pcx-1"), "vpc-a", "vpc-b").unwrap();
    assert!(rt.doctor(false).is_clean(), "{:?}", rt.doctor(false).leaks);
    let (a_links, b_links) = (
        f.kernel.netns_links("spxt-vpc-a").unwrap(),
        f.kernel.netns_links("spxt-vpc-b").unwrap(),
    );
    assert_eq!(
        (a_links, b_links),
        (vec!["x0".to_string()], vec!["x0".to_string()])
    );

    let states: Vec<State> = saves.0.lock().unwrap()[before..]
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    // One save with the intent and without the peering, then the peering without it.
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states[0].intents.keys().collect::<Vec<_>>(), vec!["pcx-1"]);
    assert!(states[0].peerings.is_empty());
    assert!(states[1].intents.is_empty() && states[1].peerings.contains_key("pcx-1"));
    drop(rt);

    // The daemon killed after the intent's save: the link exists, the record does not.
    let doc = Arc::new(Saves::default());
    doc.save(&serde_json::to_vec(&states[0]).unwrap()).unwrap();
    f.kernel.take_calls();
    let again = Runtime::open_with(cfg.clone(), f.kernel.clone(), doc.clone()).unwrap();
    let calls = f.kernel.take_calls();
    assert!(
        calls.contains(&format!("ip -n spxt-vpc-a link del x{}", p.index)),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.starts_with("nft (in spxt-vpc-b):")),
        "{calls:?}"
    );
    assert!(f.kernel.netns_links("spxt-vpc-b").unwrap().is_empty());
    let after: State = serde_json::from_slice(&doc.load().unwrap().unwrap()).unwrap();
    assert!(after.intents.is_empty() && after.peerings.is_empty());
    assert!(again.doctor(false).is_clean());
    // The index is free again: the same peering is made anew.
    let p2 = again.create_peering(None, "vpc-a", "vpc-b").unwrap();
    assert_eq!(p2.index, p.index);

    // A link no peering names (made behind the engine's back) is a leak, and fix removes it.
    f.kernel
        .ip_batch(
            Some("spxt-vpc-a"),
            "link add x7 type veth peer name x7 netns spxt-vpc-b\n",
        )
        .unwrap();
    let report = again.doctor(false);
    let names: Vec<&str> = report.leaks.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["spxt-vpc-a/x7", "spxt-vpc-b/x7"]);
    // Deleting one end removes the pair, so the fix meets only the first.
    let fixed = again.doctor(true);
    assert!(fixed.unfixed.is_empty(), "{:?}", fixed.unfixed);
    assert!(f.kernel.netns_links("spxt-vpc-a").unwrap() == vec!["x0".to_string()]);
    assert!(again.doctor(false).is_clean());
}

#[test]
fn an_endpoint_holds_an_address_that_its_groups_rules_admit_and_reaches_direct_peers_only() {
    let f = fixture();
    for (vpc, cidr, subnet, scidr) in [
        ("vpc-bast", "10.210.0.0/20", "subnet-b", "10.210.1.0/24"),
        ("vpc-dev", "10.211.0.0/20", "subnet-d", "10.211.1.0/24"),
        ("vpc-prod", "10.212.0.0/20", "subnet-p", "10.212.1.0/24"),
    ] {
        f.rt.create_vpc(Some(vpc), cidr).unwrap();
        f.rt.create_subnet(vpc, Some(subnet), scidr).unwrap();
    }
    f.rt.put_security_group("sg-eice", "vpc-dev", vec![], None)
        .unwrap();
    f.rt.put_security_group(
        "sg-ssh",
        "vpc-dev",
        vec![SgRule::tcp(22, Peer::Group("sg-eice".into()))],
        None,
    )
    .unwrap();
    f.rt.put_security_group("sg-other", "vpc-prod", vec![], None)
        .unwrap();
    let i =
        f.rt.launch(LaunchSpec {
            security_groups: vec!["sg-ssh".into()],
            ..spec("subnet-d")
        })
        .unwrap();
    f.kernel.take_calls();

    // Bad input: a group of another VPC, a missing subnet, a bad id; nothing is kept.
    let e =
        f.rt.create_endpoint("eice-1", "subnet-d", &["sg-other".into()], BTreeMap::new())
            .unwrap_err();
    assert!(e.to_string().contains("sg-other"), "{e}");
    let e =
        f.rt.create_endpoint("eice-1", "subnet-x", &[], BTreeMap::new())
            .unwrap_err();
    assert!(e.to_string().contains("subnet-x"), "{e}");
    assert!(f
        .rt
        .create_endpoint("EICE", "subnet-d", &[], BTreeMap::new())
        .is_err());
    assert!(f.rt.endpoints().is_empty());

    let ep =
        f.rt.create_endpoint("eice-1", "subnet-d", &["sg-eice".into()], BTreeMap::new())
            .unwrap();
    assert_eq!(ep.ip.to_string(), "10.211.1.3", "the next free address");
    let calls = f.kernel.take_calls().join("\n");
    assert!(
        calls.contains("ip -n spxt-vpc-dev addr add 10.211.1.3/32 dev br0"),
        "{calls}"
    );
    assert!(
        calls.contains(&format!("nft (in spxt-{}):", i.id))
            && calls.contains("ip saddr { 10.211.1.3 } tcp dport 22 accept"),
        "the instance's rule naming the endpoint's group admits its address: {calls}"
    );
    // Idempotent per id and subnet.
    assert_eq!(
        f.rt.create_endpoint("eice-1", "subnet-d", &["sg-eice".into()], BTreeMap::new())
            .unwrap(),
        ep
    );
    // Its subnet, VPC and groups are in use while it exists.
    for e in [
        f.rt.delete_subnet("subnet-d").unwrap_err(),
        f.rt.delete_security_group("sg-eice").unwrap_err(),
    ] {
        assert!(e.to_string().contains("still used by"), "{e}");
    }

    // Reach: its own VPC, then a direct peer; never a peer's peer.
    assert_eq!(f.rt.endpoint_reach("eice-1").unwrap(), vec!["vpc-dev"]);
    f.rt.create_peering(Some("pcx-1"), "vpc-bast", "vpc-dev")
        .unwrap();
    f.rt.create_peering(Some("pcx-2"), "vpc-bast", "vpc-prod")
        .unwrap();
    assert_eq!(
        f.rt.endpoint_reach("eice-1").unwrap(),
        vec!["vpc-dev", "vpc-bast"]
    );

    // Connections start from its address in its VPC's router.
    f.kernel.take_calls();
    assert!(f
        .rt
        .connect_from_endpoint("eice-1", "10.211.1.2:22", Duration::from_secs(1))
        .is_err());
    assert!(f
        .kernel
        .take_calls()
        .contains(&"connect (in spxt-vpc-dev) from 10.211.1.3 10.211.1.2:22".to_string()));

    // A failed address add leaves nothing behind.
    f.kernel.fail_on("addr add 10.211.1.4/32");
    assert!(f
        .rt
        .create_endpoint("eice-2", "subnet-d", &[], BTreeMap::new())
        .is_err());
    f.kernel.fail_on("never-matches");
    assert_eq!(f.rt.endpoints().len(), 1);

    // Delete: the address leaves the bridge and the group's rule loses it.
    f.kernel.take_calls();
    f.rt.delete_endpoint("eice-1").unwrap();
    let calls = f.kernel.take_calls().join("\n");
    assert!(
        calls.contains("ip -n spxt-vpc-dev addr del 10.211.1.3/32 dev br0"),
        "{calls}"
    );
    assert!(
        calls.contains("# sg-ssh: group sg-eice has no members yet"),
        "{calls}"
    );
    assert!(f.rt.endpoints().is_empty());
    assert!(f.rt.delete_endpoint("eice-1").is_err());
}

/// A resolver hook that records which VPCs it serves; each guard counts down when dropped.
#[derive(Default)]
struct Recorder {
    serving: Arc<Mutex<Vec<String>>>,
    /// (VPC, CIDR, host names) of each serve and update, in order.
    told: Mutex<Vec<(String, String, bool)>>,
}

impl Recorder {
    fn tell(&self, vpc: &ResolverVpc<'_>) {
        let seen = (vpc.id.to_owned(), vpc.cidr.to_string(), vpc.hostnames);
        self.told.lock().unwrap().push(seen);
    }
}

struct Serving(String, Arc<Mutex<Vec<String>>>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.1.lock().unwrap().retain(|v| v != &self.0);
    }
}

impl VpcResolver for Recorder {
    fn serve(
        &self,
        vpc: &ResolverVpc<'_>,
        _udp: std::net::UdpSocket,
        _tcp: std::net::TcpListener,
    ) -> Result<Box<dyn Send>, String> {
        self.tell(vpc);
        self.serving.lock().unwrap().push(vpc.id.to_owned());
        Ok(Box::new(Serving(vpc.id.to_owned(), self.serving.clone())))
    }

    fn update(&self, vpc: &ResolverVpc<'_>) {
        self.tell(vpc);
    }
}

#[test]
fn host_names_reach_the_resolver_at_start_on_change_and_after_a_reopen() {
    let f = fixture();
    let hook = Arc::new(Recorder::default());
    f.rt.set_vpc_resolver(hook.clone());
    f.rt.create_vpc(Some("vpc-h"), "10.203.0.0/20").unwrap();
    f.rt.set_dns_hostnames("vpc-h", true).unwrap();
    // Setting it again changes nothing and tells nobody.
    f.rt.set_dns_hostnames("vpc-h", true).unwrap();
    let told = |h: &Recorder| h.told.lock().unwrap().clone();
    let seen = |on: bool| ("vpc-h".to_string(), "10.203.0.0/20".to_string(), on);
    assert_eq!(told(&hook), [seen(false), seen(true)]);
    // Saved: a reopened runtime serves it with host names on; a VPC with its resolver off
    // keeps the setting for when it is turned on.
    let again = Runtime::open(f.rt.config().clone(), f.kernel.clone()).unwrap();
    let hook2 = Arc::new(Recorder::default());
    again.set_vpc_resolver(hook2.clone());
    assert_eq!(told(&hook2), [seen(true)]);
    again.set_dns_support("vpc-h", false).unwrap();
    again.set_dns_hostnames("vpc-h", false).unwrap();
    again.set_dns_support("vpc-h", true).unwrap();
    assert_eq!(told(&hook2), [seen(true), seen(false)]);
    assert!(matches!(
        again.set_dns_hostnames("vpc-nope", true),
        Err(RuntimeError::Net(NetError::NotFound { .. }))
    ));
}

#[test]
fn each_vpc_gets_a_resolver_at_base_plus_two_that_dns_support_turns_off_and_a_reopen_restores() {
    let f = fixture();
    f.rt.create_vpc(Some("vpc-a"), "10.200.0.0/20").unwrap();
    let hook = Arc::new(Recorder::default());
    // Registering the hook starts the VPCs made before it (a restarted daemon's case).
    assert!(f.rt.set_vpc_resolver(hook.clone()).is_empty());
    f.rt.create_vpc(Some("vpc-b"), "10.201.0.0/20").unwrap();
    assert_eq!(*hook.serving.lock().unwrap(), ["vpc-a", "vpc-b"]);
    let calls = f.kernel.take_calls();
    for want in [
        "ip -n spxt-vpc-a addr replace 10.200.0.2/32 dev lo",
        "udp bind (in spxt-vpc-a) 10.200.0.2:53",
        "listen (in spxt-vpc-a) 10.200.0.2:53",
        "udp bind (in spxt-vpc-b) 10.201.0.2:53",
    ] {
        assert!(
            calls.iter().any(|c| c.contains(want)),
            "`{want}` not in {calls:#?}"
        );
    }
    // The subnet holding base + 2 never hands it to an instance.
    f.rt.create_subnet("vpc-a", Some("subnet-1"), "10.200.0.0/24")
        .unwrap();
    let i = f.rt.launch(spec("subnet-1")).unwrap();
    assert_eq!(i.private_ip.to_string(), "10.200.0.3");
    let conf = fs::read_to_string(f.rt.instance_dir(&i.id).join("upper/etc/resolv.conf")).unwrap();
    assert_eq!(conf, "nameserver 10.200.0.2\n");
    // Off closes it, and stays off across a reopen; deleting a VPC stops its resolver.
    f.rt.set_dns_support("vpc-b", false).unwrap();
    assert!(!f.rt.resolver_running("vpc-b"));
    assert_eq!(*hook.serving.lock().unwrap(), ["vpc-a"]);
    let again = Runtime::open(f.rt.config().clone(), f.kernel.clone()).unwrap();
    let hook2 = Arc::new(Recorder::default());
    again.set_vpc_resolver(hook2.clone());
    assert_eq!(*hook2.serving.lock().unwrap(), ["vpc-a"]);
    again.set_dns_support("vpc-b", true).unwrap();
    assert!(again.resolver_running("vpc-b"));
    again.delete_vpc("vpc-b").unwrap();
    assert_eq!(*hook2.serving.lock().unwrap(), ["vpc-a"]);
    // A VPC whose subnet gave base + 2 to an instance before the resolver existed: the
    // resolver refuses to take it, saying who holds it; a free one is reserved when it starts.
    again.create_vpc(Some("vpc-c"), "10.202.0.0/20").unwrap();
    again
        .create_subnet("vpc-c", Some("subnet-c"), "10.202.0.0/24")
        .unwrap();
    again
        .lock()
        .vpcs
        .get_mut("vpc-c")
        .unwrap()
        .subnets
        .get_mut("subnet-c")
        .unwrap()
        .free("10.202.0.2".parse().unwrap())
        .unwrap();
    again.set_dns_support("vpc-c", false).unwrap();
    let held = again.launch(spec("subnet-c")).unwrap();
    assert_eq!(held.private_ip.to_string(), "10.202.0.2");
    let e = again
        .set_dns_support("vpc-c", true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("instance {} holds 10.202.0.2", held.id)),
        "{e}"
    );
    again
        .terminate(&held.id, Duration::from_millis(10))
        .unwrap();
    again.set_dns_support("vpc-c", true).unwrap();
    assert_ne!(
        again
            .launch(spec("subnet-c"))
            .unwrap()
            .private_ip
            .to_string(),
        "10.202.0.2"
    );
    // A hook that fails is reported per VPC, not fatal.
    f.kernel.fail_on("udp bind");
    let errs = Runtime::open(f.rt.config().clone(), f.kernel.clone())
        .unwrap()
        .set_vpc_resolver(Arc::new(Recorder::default()));
    let failed: Vec<&str> = errs.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(failed, ["vpc-a", "vpc-c"], "{errs:?}");
}
