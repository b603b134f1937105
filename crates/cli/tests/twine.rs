//! The twine example's parts: `stacks/app.yaml` validates through the daemon (as root, with
//! the runtime, every type is provisionable), and the static app binary is built and packaged by
//! `spindle pkg build`. Skips the root part (printing why) when not root.

mod common;

use common::{Daemon, BIN};
use spindle_model::api::TemplateRequest;
use std::path::Path;

fn example(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/twine")
        .join(path)
}

#[test]
fn app_template_is_valid() {
    let prefix = format!("stw{}", std::process::id() % 100_000);
    let root = spindle_runtime::host::missing_prerequisites().is_none();
    let d = if root {
        Daemon::start_with_runtime(BIN, &prefix)
    } else {
        Daemon::start(BIN)
    };
    let body = std::fs::read_to_string(example("stacks/app.yaml")).unwrap();
    let req = TemplateRequest {
        template_body: body,
        template_name: Some("app.yaml".into()),
        parameters: Default::default(),
        ..Default::default()
    };
    let r = d.admin().validate_template("management", &req).unwrap();
    let types: Vec<&str> = r.resource_types.keys().map(String::as_str).collect();
    for t in [
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::AutoScaling::ScalingPolicy",
        "AWS::AutoScaling::WarmPool",
        "AWS::EC2::LaunchTemplate",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    if root {
        // With the runtime every type is provisionable, the load balancer's included, and
        // nothing is wrong with the template.
        assert!(r.unsupported_types.is_empty(), "{r:?}");
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    } else {
        // Without it only the runtime's types are missing.
        for diag in &r.diagnostics {
            assert!(
                r.unsupported_types
                    .iter()
                    .any(|t| diag.message.contains(t.as_str())),
                "unexpected problem: {diag:?}"
            );
        }
        assert!(!r
            .unsupported_types
            .iter()
            .any(|t| t.starts_with("AWS::ElasticLoadBalancingV2::")));
        eprintln!("SKIPPED the provider part of {}: not root", module_path!());
    }
}

#[test]
fn the_app_builds_static_and_packages() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let o = std::process::Command::new(example("app/build.sh"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let bin = example("app/dist/twine");
    // A dynamic binary has a PT_INTERP program header naming its loader; a static (or
    // static-pie) one has none. (The loader's name may still appear as a string in static glibc.)
    let bytes = std::fs::read(&bin).unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF\x02\x01"),
        "twine must be a 64-bit little-endian ELF"
    );
    assert!(
        !has_interpreter(&bytes),
        "twine must be a static ELF binary to run in a busybox image"
    );

    let out = dir.path().join("debs");
    std::fs::create_dir_all(&out).unwrap();
    let o = std::process::Command::new(common::BIN)
        .args(["pkg", "build"])
        .arg(example("packages/twine.toml"))
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(deb.file_name().unwrap(), "twine_0.1.0-1_amd64.deb");
    let o = std::process::Command::new(common::BIN)
        .args(["pkg", "inspect", "--contents"])
        .arg(&deb)
        .output()
        .unwrap();
    let text = common::stdout(&o);
    assert!(
        text.contains("/usr/bin/twine") && text.contains("/etc/default/twine"),
        "{text}"
    );

    // The binary serves: start it on a loopback port and ask for /healthz.
    let mut child = std::process::Command::new(&bin)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut s, b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        resp.starts_with("HTTP/1.1 200 OK") && resp.ends_with("ok"),
        "{resp}"
    );
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == PT_INTERP
    })
}
