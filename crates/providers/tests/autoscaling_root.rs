//! Real-kernel test of auto scaling: a group of busybox instances deployed from a
//! CloudFormation template scales out under a CPU load step, scales back in after it, and
//! replaces an instance killed with `kill -9`. The controller loop is driven here once a
//! second, as the daemon does. Needs root, `ip`, `nft`, `nsenter` and a static busybox;
//! prints SKIPPED and passes without them. Names start with `spasg`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle_autoscale::Rules;
use spindle_providers::{register_ec2, AutoScaling};
use spindle_runtime::{build_busybox_rootfs, ImageConfig, RealKernel, Runtime, RuntimeConfig};
use spindle_stack::{
    DeployRequest, Engine, EngineOptions, MemoryJournal, ProviderRegistry, StackStatus,
};
use spindle_template::{parse, plan, Context, PlanInput};

struct Env {
    rt: Arc<Runtime>,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let prefix = format!("spasg{}", (std::process::id() + nanos) % 10_000);
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::open(
            RuntimeConfig::new(dir.path().join("data"), &prefix),
            Arc::new(RealKernel),
        )
        .unwrap();
        let tarball = dir.path().join("busybox.tar");
        build_busybox_rootfs(&tarball, Path::new(spindle_runtime::host::BUSYBOX)).unwrap();
        let cfg = ImageConfig {
            cmd: vec!["sleep".into(), "3600".into()],
            ..Default::default()
        };
        rt.images()
            .import(&tarball, cfg, Some("busybox:idle"))
            .unwrap();
        Env {
            rt: Arc::new(rt),
            _dir: dir,
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let errors = self.rt.destroy_all(Duration::from_secs(2));
        let report = self.rt.doctor(true);
        if !std::thread::panicking() {
            assert!(errors.is_empty(), "teardown errors: {errors:?}");
            assert!(report.is_clean(), "leaks at teardown: {report:?}");
        }
    }
}

/// Stops the controller thread when dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn ticker(asg: Arc<AutoScaling>) -> Ticker {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            asg.tick(now);
            // Sleep to the start of the next second.
            let sub = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_millis();
            std::thread::sleep(Duration::from_millis(1000 - u64::from(sub).min(999)));
        }
    });
    Ticker {
        stop,
        handle: Some(handle),
    }
}

const ACCOUNT: &str = "123456789012";

/// A load balancer stand-in that records registrations, and whether each deregistered
/// instance was still running when it was drained (it must be: traffic first, then the
/// instance).
#[derive(Default)]
struct RecordingLb {
    rt: std::sync::OnceLock<Arc<Runtime>>,
    registered: std::sync::Mutex<Vec<String>>,
    /// `(instance, running when deregistered)`.
    deregistered: std::sync::Mutex<Vec<(String, bool)>>,
}

impl spindle_providers::LoadBalancing for RecordingLb {
    fn register(&self, _tgs: &[String], i: &spindle_runtime::Instance) -> Result<(), String> {
        self.registered.lock().unwrap().push(i.id.clone());
        Ok(())
    }
    fn deregister(&self, _tgs: &[String], id: &str) -> Result<(), String> {
        // A short drain, as a target group's deregistration delay would be.
        std::thread::sleep(Duration::from_millis(300));
        let running = self
            .rt
            .get()
            .and_then(|rt| rt.describe(id).ok())
            .is_some_and(|i| i.state == spindle_runtime::InstanceState::Running);
        self.deregistered
            .lock()
            .unwrap()
            .push((id.to_string(), running));
        Ok(())
    }
}

/// A stack deployed from `template` through an engine with the EC2 and auto scaling
/// providers over the test's runtime.
struct Deployed {
    asg: Arc<AutoScaling>,
    ec2: Arc<spindle_providers::Ec2>,
    engine: Engine,
    tokio: tokio::runtime::Runtime,
}

impl Deployed {
    fn new(env: &Env, rules: Rules, state: &Path, template: &str, stack: &str) -> Deployed {
        let mut registry = ProviderRegistry::new();
        let ec2 = register_ec2(&mut registry, env.rt.clone()).unwrap();
        let asg = AutoScaling::open(ec2.clone(), rules, state.to_path_buf()).unwrap();
        asg.register(&mut registry);
        let engine = Engine::new(
            Arc::new(MemoryJournal::new()),
            registry,
            EngineOptions::default(),
        );
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let template = parse(template, "asg.yaml").unwrap();
        let input = PlanInput {
            context: Context::new(ACCOUNT, "eu-west-1", stack),
            ..PlanInput::default()
        };
        let out = tokio
            .block_on(engine.deploy(DeployRequest::new(plan(&template, &input).unwrap())))
            .unwrap();
        assert_eq!(out.status, StackStatus::CreateComplete, "{:?}", out.reason);
        Deployed {
            asg,
            ec2,
            engine,
            tokio,
        }
    }
}

const TEMPLATE: &str = r#"
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.214.0.0/20}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.214.1.0/24}
  Template:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData: {ImageId: "busybox:idle", InstanceType: t3.nano}
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      MinSize: 1
      MaxSize: 3
      DesiredCapacity: 1
      DefaultInstanceWarmup: 1
      LaunchTemplate:
        LaunchTemplateId: !Ref Template
        Version: !GetAtt Template.LatestVersionNumber
      VPCZoneIdentifier: [!Ref Subnet]
  Cpu:
    Type: AWS::AutoScaling::ScalingPolicy
    Properties:
      AutoScalingGroupName: !Ref Group
      PolicyType: TargetTrackingScaling
      TargetTrackingConfiguration:
        TargetValue: 50
        PredefinedMetricSpecification: {PredefinedMetricType: ASGAverageCPUUtilization}
Outputs:
  GroupName: {Value: !Ref Group}
"#;

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn group_scales_out_under_cpu_load_scales_in_after_and_replaces_a_killed_instance() {
    if !spindle_testsupport::root_tests_can_run(module_path!()) {
        return;
    }
    let env = Env::new();
    let rt = env.rt.clone();
    let rules = Rules {
        scale_out_seconds: 3,
        scale_in_seconds: 8,
        ..Rules::default()
    };
    let state = env._dir.path().join("autoscaling.json");
    let account = &spindle_model::AccountId::parse(ACCOUNT).unwrap();
    let d = Deployed::new(&env, rules.clone(), &state, TEMPLATE, "web");
    let (asg, ec2) = (d.asg.clone(), d.ec2.clone());
    let lb = Arc::new(RecordingLb::default());
    let _ = lb.rt.set(env.rt.clone());
    asg.set_load_balancing(lb.clone());
    let name = asg.list(account)[0].name.clone();
    let tick = ticker(asg.clone());

    let in_service = |asg: &AutoScaling| -> Vec<String> {
        asg.describe(account, &name)
            .unwrap()
            .instances
            .into_iter()
            .filter(|i| i.lifecycle_state == "InService")
            .map(|i| i.id)
            .collect()
    };
    wait_for("the first instance", Duration::from_secs(10), || {
        in_service(&asg).len() == 1
    });
    let first = in_service(&asg)[0].clone();

    // A CPU load step: a busy loop in the instance for 12 s (t3.nano may use 25% of a CPU).
    let loader = {
        let rt = rt.clone();
        let id = first.clone();
        std::thread::spawn(move || {
            let argv: Vec<String> = [
                "/bin/busybox",
                "timeout",
                "12",
                "sh",
                "-c",
                "while :; do :; done",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let r = rt.exec(&id, &argv, Duration::from_secs(20));
            eprintln!(
                "load exec: {:?}",
                r.as_ref()
                    .map(|o| (o.status, String::from_utf8_lossy(&o.stderr).to_string()))
            );
        })
    };
    let load_started = Instant::now();
    wait_for("a scale-out", Duration::from_secs(12), || {
        in_service(&asg).len() >= 2
    });
    eprintln!(
        "scaled out {:?} after the load step",
        load_started.elapsed()
    );
    let acts = asg.activities(account, &name).unwrap();
    let out_cause = acts
        .iter()
        .find(|a| a.description.starts_with("Scaling out"))
        .map(|a| a.cause.clone())
        .unwrap();
    assert!(
        // A busy loop is 100% (a surge, acted on after 1 s) or ramps up (3 s over target).
        out_cause.starts_with("ASGAverageCPUUtilization")
            && (out_cause.contains("≥ 2× target 50 for 1 s: desired 1 → 2")
                || out_cause.contains("> target 50 for 3 s: desired 1 → 2")),
        "{out_cause}"
    );
    loader.join().unwrap();

    wait_for("a scale-in after the load", Duration::from_secs(30), || {
        asg.describe(account, &name).unwrap().desired == 1 && in_service(&asg).len() == 1
    });
    let acts = asg.activities(account, &name).unwrap();
    assert!(
        acts.iter().any(|a| a.description.starts_with("Scaling in")
            && a.cause.contains("< target 50 for 8 s: desired 2 → 1")),
        "{acts:#?}"
    );

    // Every instance that served was registered; the scaled-in one was drained while it
    // still ran, and only then terminated.
    let registered = lb.registered.lock().unwrap().clone();
    assert!(
        registered.contains(&first) && registered.len() >= 2,
        "{registered:?}"
    );
    wait_for("the drain", Duration::from_secs(3), || {
        !lb.deregistered.lock().unwrap().is_empty()
    });
    let deregistered = lb.deregistered.lock().unwrap().clone();
    assert_eq!(deregistered.len(), 1, "{deregistered:?}");
    assert!(
        deregistered[0].1,
        "deregistered after it was terminated: {deregistered:?}"
    );

    // kill -9 the remaining instance: it is replaced.
    let victim = in_service(&asg)[0].clone();
    let pid = rt.describe(&victim).unwrap().pid.unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is an instance this test made.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    let killed_at = Instant::now();
    wait_for("a replacement", Duration::from_secs(15), || {
        let s = in_service(&asg);
        s.len() == 1 && s[0] != victim
    });
    eprintln!("replaced {:?} after kill -9", killed_at.elapsed());
    let acts = asg.activities(account, &name).unwrap();
    assert!(acts.iter().any(|a| a.cause.contains(&format!(
        "instance {victim} was taken out of service in response to an EC2 health check"
    ))));
    drop(tick);

    // A restarted daemon (a new AutoScaling over the same state file) finds the group and
    // adopts its running instance.
    let serving = in_service(&asg);
    let again = AutoScaling::open(ec2, rules, state).unwrap();
    let g = again.describe(account, &name).unwrap();
    assert_eq!((g.min, g.max, g.desired), (1, 3, 1));
    assert_eq!(g.policies, vec!["Cpu".to_string()]);
    assert_eq!(in_service(&again), serving);
    drop(again);

    let del = d.tokio.block_on(d.engine.delete_stack("web")).unwrap();
    assert_eq!(del.status, StackStatus::DeleteComplete, "{:?}", del.reason);
    assert!(asg.list(account).is_empty());
    wait_for("instances to go", Duration::from_secs(10), || {
        rt.list()
            .iter()
            .all(|i| i.state == spindle_runtime::InstanceState::Terminated)
    });
}

const WARM_TEMPLATE: &str = r#"
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.216.0.0/20}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref Vpc, CidrBlock: 10.216.1.0/24}
  Template:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData: {ImageId: "busybox:idle", InstanceType: t3.nano}
  Group:
    Type: AWS::AutoScaling::AutoScalingGroup
    Properties:
      AutoScalingGroupName: warm
      MinSize: 1
      MaxSize: 2
      LaunchTemplate: {LaunchTemplateId: !Ref Template, Version: "1"}
      VPCZoneIdentifier: [!Ref Subnet]
  Pool:
    Type: AWS::AutoScaling::WarmPool
    Properties: {AutoScalingGroupName: !Ref Group, MinSize: 1, MaxGroupPreparedCapacity: 2}
"#;

/// The process state letter (`S`, `T`, …) of a host pid.
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, r)| r.chars().next())
        .unwrap_or('?')
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn warm_pool_instances_wait_paused_and_join_at_once() {
    if !spindle_testsupport::root_tests_can_run(module_path!()) {
        return;
    }
    let env = Env::new();
    let rt = env.rt.clone();
    let state = env._dir.path().join("autoscaling.json");
    let account = &spindle_model::AccountId::parse(ACCOUNT).unwrap();
    let d = Deployed::new(&env, Rules::default(), &state, WARM_TEMPLATE, "warm");
    let asg = d.asg.clone();
    let tick = ticker(asg.clone());
    let state_of = |asg: &AutoScaling, st: &str| -> Vec<String> {
        asg.describe(account, "warm")
            .unwrap()
            .instances
            .into_iter()
            .filter(|i| i.lifecycle_state == st)
            .map(|i| i.id)
            .collect()
    };
    wait_for(
        "one in service and one warmed",
        Duration::from_secs(10),
        || state_of(&asg, "InService").len() == 1 && state_of(&asg, "Warmed:Stopped").len() == 1,
    );
    let warmed = state_of(&asg, "Warmed:Stopped")[0].clone();
    let pid = rt.describe(&warmed).unwrap().pid.unwrap();
    wait_for(
        "the warmed instance to be paused",
        Duration::from_secs(3),
        || proc_state(pid) == 'T',
    );

    asg.set_desired(account, "warm", 2).unwrap();
    let asked = Instant::now();
    wait_for(
        "the warmed instance in service",
        Duration::from_secs(5),
        || state_of(&asg, "InService").contains(&warmed),
    );
    let joined = asked.elapsed();
    assert_ne!(proc_state(pid), 'T', "resumed");
    eprintln!("warm pool instance in service {joined:?} after set-desired (the next 1 s tick)");
    let acts = asg.activities(account, "warm").unwrap();
    assert!(
        acts.iter().any(|a| a.description
            == format!("Instance {warmed} left the warm pool and entered service")),
        "{acts:#?}"
    );
    drop(tick);
    let del = d.tokio.block_on(d.engine.delete_stack("warm")).unwrap();
    assert_eq!(del.status, StackStatus::DeleteComplete, "{:?}", del.reason);
}
