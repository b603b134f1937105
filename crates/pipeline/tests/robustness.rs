//! No input makes the reader panic: truncated and mutated workflows (the corpus when it is
//! there, and a built-in sample always) are each accepted or refused with diagnostics.

mod common;

use std::path::PathBuf;

const SAMPLE: &str = "name: ci\non:\n  push:\n    branches: [main]\n  schedule:\n    - cron: '0 4 * * *'\njobs:\n  build:\n    runs-on: debian\n    strategy:\n      matrix:\n        v: [1, 2]\n        include: [{v: 3, x: y}]\n    steps:\n      - uses: actions/checkout@v4\n      - id: s\n        run: echo \"${{ format('{0}', matrix.v) }}\" && ${{ toJSON(github.event.*.x) }}\n        if: ${{ !cancelled() && (needs.a.result == 'success' || contains(github.ref, 'x')) }}\n  test:\n    needs: [build]\n    runs-on: debian\n    steps: [{run: 'true'}]\n";

fn corpus_files() -> Vec<PathBuf> {
    match common::corpus_dir() {
        Some(dir) => common::workflows(&dir),
        None => {
            println!("corpus not found: the built-in sample only");
            Vec::new()
        }
    }
}

/// Each variant must come back as a workflow or as at least one diagnostic.
fn survive(name: &str, src: &str) {
    let r = std::panic::catch_unwind(|| spindle_pipeline::parse(src, name));
    match r {
        Ok(Ok(_)) => {}
        Ok(Err(d)) => assert!(!d.0.is_empty(), "{name}: refused with no diagnostic"),
        Err(_) => panic!("{name}: the reader panicked on:\n{src}"),
    }
}

#[test]
fn truncated_and_mutated_workflows_never_panic() {
    let mut sources: Vec<(String, String)> = vec![("sample".into(), SAMPLE.into())];
    for f in corpus_files() {
        sources.push((
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap(),
        ));
    }
    const NOISE: &[char] = &[
        ':', '-', '[', ']', '{', '}', '$', '\'', '"', '\n', ' ', '#', '*', '&', '!', '|', '>', '(',
        ')', '.', ',',
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n.max(1)
    };
    let mut variants = 0;
    for (name, src) in &sources {
        let chars: Vec<char> = src.chars().collect();
        let step = (chars.len() / 30).max(1);
        for cut in (0..chars.len()).step_by(step) {
            survive(name, &chars[..cut].iter().collect::<String>());
            variants += 1;
        }
        for _ in 0..30 {
            let mut m = chars.clone();
            for _ in 0..3 {
                let at = next(m.len());
                if !m.is_empty() {
                    m[at] = NOISE[next(NOISE.len())];
                }
            }
            survive(name, &m.iter().collect::<String>());
            variants += 1;
        }
    }
    println!("{variants} variants of {} workflows read", sources.len());
    assert!(variants >= 60);
}
