//! Benchmarks for the stack engine (a benchmark, not a timed test):
//! - deploy a 100-resource stack of SSM parameters (in-memory parameter store, file
//!   journal with and without fsync): target < 1 s;
//! - an update of all 100 values, and the delete;
//! - a change set on a deployed 500-resource stack: target < 50 ms.
//!
//! Run: `cargo run --release -p spindle-stack --example deploy_bench`

use std::sync::Arc;
use std::time::Instant;

use spindle_stack::ssm::MemoryParamStore;
use spindle_stack::testing::FakeProvider;
use spindle_stack::{
    register_builtins, DeployRequest, Engine, EngineOptions, FileJournal, MemoryJournal,
    ProviderRegistry, StackStatus,
};
use spindle_template::template::quota;
use spindle_template::{
    parse, plan, synthetic_template, Context, NoExternal, PlanInput, ValidateOptions,
};

fn params_template(n: usize, version: &str) -> String {
    let mut s = String::from("Resources:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  P{i}:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /bench/p{i}\n      Type: String\n"
        ));
        if i == 0 {
            s.push_str(&format!("      Value: {version}-root\n"));
        } else {
            // A tree: each value is built from its parent's, so the graph has depth ~log2(n).
            s.push_str(&format!(
                "      Value: !Sub '${{P{}.Value}}/{version}-{i}'\n",
                (i - 1) / 2
            ));
        }
    }
    s
}

fn plan_for(src: &str, stack: &str, params: &[(&str, &str)]) -> spindle_template::Plan {
    let t = parse(src, "bench.yaml").expect("template parses");
    let mut input = PlanInput {
        context: Context::new("123456789012", "eu-west-1", stack),
        // The 500-resource template is over the direct-upload quota, as it would be on AWS.
        validate: ValidateOptions {
            max_body_bytes: quota::S3_BODY_BYTES,
            ..ValidateOptions::default()
        },
        ..PlanInput::default()
    };
    for (k, v) in params {
        input.parameters.insert(k.to_string(), v.to_string());
    }
    plan(&t, &input).expect("template plans")
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time of this thread so far (Linux), which a loaded machine inflates less than wall
/// time. The engine runs on this thread (current-thread runtime).
fn cpu() -> std::time::Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(std::time::Duration::from_nanos)
        .unwrap_or_default()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");

    for sync in [false, true] {
        let store = Arc::new(MemoryParamStore::new());
        let mut registry = ProviderRegistry::new();
        register_builtins(&mut registry, store.clone());
        let path = dir.path().join(format!("journal-{sync}.jsonl"));
        let journal = Arc::new(FileJournal::open(&path, sync).expect("journal opens"));
        let engine = Engine::new(journal, registry, EngineOptions::default());

        let t0 = Instant::now();
        let p1 = plan_for(&params_template(100, "v1"), "bench", &[]);
        let planned = t0.elapsed();
        let t1 = Instant::now();
        let c1 = cpu();
        let o = rt
            .block_on(engine.deploy(DeployRequest::new(p1)))
            .expect("deploys");
        let deployed = t1.elapsed();
        let deployed_cpu = cpu() - c1;
        assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
        assert_eq!(store.names().len(), 100);

        let t2 = Instant::now();
        let p2 = plan_for(&params_template(100, "v2"), "bench", &[]);
        let o = rt
            .block_on(engine.deploy(DeployRequest::new(p2)))
            .expect("updates");
        let updated = t2.elapsed();
        assert_eq!(o.status, StackStatus::UpdateComplete, "{o:?}");

        let t3 = Instant::now();
        let o = rt.block_on(engine.delete_stack("bench")).expect("deletes");
        let deleted = t3.elapsed();
        assert_eq!(o.status, StackStatus::DeleteComplete);
        assert!(store.names().is_empty());
        let records = std::fs::read_to_string(&path)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        println!(
            "100 SSM parameters, file journal (fsync {}): plan {}, create {} wall / {} cpu (target < 1000 ms), update all {}, delete {}; {records} journal records",
            if sync { "on" } else { "off" },
            ms(planned),
            ms(deployed),
            ms(deployed_cpu),
            ms(updated),
            ms(deleted),
        );
    }

    // A deployed 500-resource stack (fake providers for the EC2 types of the synthetic
    // template), then the change set of an update that changes a parameter used widely.
    let fake = Arc::new(FakeProvider::new());
    let store = Arc::new(MemoryParamStore::new());
    let mut registry = ProviderRegistry::new();
    register_builtins(&mut registry, store);
    for t in [
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::Instance",
    ] {
        registry.register(t, fake.clone());
    }
    let engine = Engine::new(
        Arc::new(MemoryJournal::new()),
        registry,
        EngineOptions::default(),
    );
    let src = synthetic_template(500);
    let t0 = Instant::now();
    let o = rt
        .block_on(engine.deploy(DeployRequest::new(plan_for(&src, "big", &[]))))
        .expect("deploys");
    assert_eq!(o.status, StackStatus::CreateComplete, "{o:?}");
    let created = t0.elapsed();

    let t1 = Instant::now();
    let c1 = cpu();
    let p = plan_for(&src, "big", &[("Cidr", "10.1.0.0/16")]);
    let planned = t1.elapsed();
    let planned_cpu = cpu() - c1;
    let t2 = Instant::now();
    let c2 = cpu();
    let cs = engine.change_set(&p, &NoExternal).expect("change set");
    let classified = t2.elapsed();
    let classified_cpu = cpu() - c2;
    let t4 = Instant::now();
    let c4 = cpu();
    let view = engine.stack("big").expect("view");
    let folded = t4.elapsed();
    let folded_cpu = cpu() - c4;
    let t5 = Instant::now();
    let c5 = cpu();
    let direct = spindle_template::classify(
        &view.deployed.state,
        &p,
        spindle_template::ResourceSchemas::bundled(),
        &NoExternal,
    )
    .expect("classifies");
    let classify_only = t5.elapsed();
    let classify_only_cpu = cpu() - c5;
    assert_eq!(direct, cs);
    println!(
        "  of which: journal fold to the stack view {} wall / {} cpu, classify alone {} wall / {} cpu",
        ms(folded),
        ms(folded_cpu),
        ms(classify_only),
        ms(classify_only_cpu)
    );
    let t3 = Instant::now();
    let same = engine
        .change_set(&plan_for(&src, "big", &[]), &NoExternal)
        .expect("change set");
    let unchanged = t3.elapsed();
    assert!(same.is_empty());
    println!(
        "500-resource stack: create {} with fake providers; change set of a Cidr change: read+plan {} wall / {} cpu, change set {} wall / {} cpu ({} changes), total {} wall / {} cpu (target < 50 ms); no-op change set incl. plan {}",
        ms(created),
        ms(planned),
        ms(planned_cpu),
        ms(classified),
        ms(classified_cpu),
        cs.changes.len(),
        ms(planned + classified),
        ms(planned_cpu + classified_cpu),
        ms(unchanged),
    );
}
