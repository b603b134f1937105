//! Issue #14: a project reads the same, and its build command runs the same, whether it is
//! named by a relative path, an absolute one, `.` from inside it, or its manifest file. The
//! README's `spindle up examples/twine` (relative, from the repository root) failed because
//! the package's `build` path was joined to the project directory *and* run from there.
//!
//! One test in its own binary: it changes the process's working directory.

use spindle_project::{Manifest, MANIFEST};
use std::path::Path;
use std::process::Command;

const TEXT: &str = r#"
[project]
name = "paths"
[accounts.dev]
[repos.app]
account = "dev"
[packages.app]
spec = "packages/app.toml"
build = "tools/build.sh --release"
inputs = ["src"]
repo = "app"
[[stacks]]
name = "app"
account = "dev"
template = "stacks/app.yaml"
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn relative_absolute_and_dot_name_the_same_project() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path().canonicalize().unwrap();
    let proj = work.join("proj");
    write(&proj.join(MANIFEST), TEXT);
    write(&proj.join("packages/app.toml"), "");
    write(&proj.join("src/main.rs"), "fn main() {}\n");
    write(&proj.join("stacks/app.yaml"), "Resources: {}\n");
    // The build script records where it ran and with what.
    write(
        &proj.join("tools/build.sh"),
        "#!/bin/sh\nprintf '%s %s\\n' \"$(pwd)\" \"$1\" > built-here\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        proj.join("tools/build.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(proj.join("sub")).unwrap();

    // (working directory, the path given to `spindle up`)
    let forms = [
        (work.clone(), "proj".to_string()),
        (work.clone(), "proj/".to_string()),
        (work.clone(), "proj/spindle.toml".to_string()),
        (work.clone(), "./proj/../proj".to_string()),
        (Path::new("/").to_owned(), proj.display().to_string()),
        (proj.clone(), ".".to_string()),
        (proj.join("sub"), "..".to_string()),
    ];
    let mut first: Option<Manifest> = None;
    for (cwd, arg) in forms {
        std::env::set_current_dir(&cwd).unwrap();
        let m = Manifest::load(Path::new(&arg))
            .unwrap_or_else(|e| panic!("{arg} from {}: {e}", cwd.display()));
        assert_eq!(m.path, proj.join(MANIFEST), "{arg} from {}", cwd.display());
        assert_eq!(m.dir(), proj, "{arg}");
        assert_eq!(m.stacks[0].template, proj.join("stacks/app.yaml"), "{arg}");
        let p = &m.packages["app"];
        assert_eq!(p.spec, proj.join("packages/app.toml"), "{arg}");
        let cmd = p.build_command(m.dir()).unwrap();
        assert_eq!(cmd.program, proj.join("tools/build.sh"), "{arg}");
        assert_eq!(cmd.cwd, proj, "{arg}");
        // Run it as `spindle up` does: it starts, in the project directory.
        let _ = std::fs::remove_file(proj.join("built-here"));
        let status = Command::new(&cmd.program)
            .args(&cmd.args)
            .current_dir(&cmd.cwd)
            .status()
            .unwrap_or_else(|e| panic!("{arg} from {}: cannot run {cmd:?}: {e}", cwd.display()));
        assert!(status.success(), "{arg}: {status}");
        assert_eq!(
            std::fs::read_to_string(proj.join("built-here")).unwrap(),
            format!("{} --release\n", proj.display()),
            "{arg}"
        );
        match &first {
            None => first = Some(m),
            Some(f) => assert_eq!(&m, f, "{arg} from {}", cwd.display()),
        }
    }

    // A bare program name is looked up in PATH, not in the project.
    let mut m = first.unwrap();
    m.packages.get_mut("app").unwrap().build = vec!["make".into(), "deb".into()];
    let cmd = m.packages["app"].build_command(m.dir()).unwrap();
    assert_eq!(cmd.program, Path::new("make"));
    m.packages.get_mut("app").unwrap().build.clear();
    assert_eq!(m.packages["app"].build_command(m.dir()), None);

    // A missing project still says which file it could not read.
    std::env::set_current_dir(&work).unwrap();
    let e = Manifest::load(Path::new("nope")).unwrap_err().to_string();
    assert_eq!(e, "cannot read `nope`");
}
