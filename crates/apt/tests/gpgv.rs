//! Keys made by `SigningKey` are accepted by GnuPG's `gpgv`, which apt runs to check
//! `InRelease` and `Release.gpg`.

use std::process::Command;

use spindle_apt::{KeyAlgorithm, SigningKey};

fn gpgv(keyring: &std::path::Path, files: &[&std::path::Path]) -> std::process::Output {
    Command::new("gpgv")
        .arg("--keyring")
        .arg(keyring)
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn gpgv_accepts_ed25519_and_rsa_signatures() {
    if Command::new("gpgv").arg("--version").output().is_err() {
        eprintln!("SKIPPED gpgv_accepts_ed25519_and_rsa_signatures: gpgv is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (algo, name) in [
        (KeyAlgorithm::Ed25519, "ed25519"),
        (KeyAlgorithm::Rsa3072, "rsa3072"),
    ] {
        let key = SigningKey::generate(&format!("{name} <{name}@example.invalid>"), algo).unwrap();
        let keyring = dir.path().join(format!("{name}.gpg"));
        std::fs::write(&keyring, key.public_keyring().unwrap()).unwrap();
        let text =
            "Origin: test\nLabel: test\nSuite: stable\nDate: Fri, 27 Nov 2026 08:00:00 UTC\n";
        let inrelease = dir.path().join(format!("{name}.InRelease"));
        std::fs::write(&inrelease, key.clearsign(text).unwrap()).unwrap();
        let out = gpgv(&keyring, &[&inrelease]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&key.fingerprint()) || stderr.contains("Good signature"),
            "{stderr}"
        );

        let release = dir.path().join(format!("{name}.Release"));
        let sig = dir.path().join(format!("{name}.Release.gpg"));
        std::fs::write(&release, text).unwrap();
        std::fs::write(&sig, key.detach_sign(text.as_bytes()).unwrap()).unwrap();
        let out = gpgv(&keyring, &[&sig, &release]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&release, text.replace("stable", "evil")).unwrap();
        let out = gpgv(&keyring, &[&sig, &release]);
        assert!(
            !out.status.success(),
            "{name}: gpgv accepted a tampered Release"
        );
    }
}
