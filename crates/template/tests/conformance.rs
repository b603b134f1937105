//! Conformance run over the corpus of real templates (`/work/shared/corpus/cfn-templates`,
//! or `SPINDLE_CFN_CORPUS`): every template must be read without a panic, and templates
//! that AWS accepts must not be rejected for syntax. Every resource's properties are checked
//! against the registry schemas: the only property errors allowed are the real mistakes
//! cfn-lint reports too (listed below). Prints the counts by category.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use spindle_template::{
    params::synthesize_missing, parse, plan, Category, ExternalResolver, PlanInput, ValidateOptions,
};

/// Files in the corpus that are not CloudFormation templates (a Kubernetes manifest,
/// CodeBuild buildspecs, a bandit config): rejecting them is right.
const NOT_TEMPLATES: &[&str] = &[
    "EKS/manifest.yml",
    "CloudFormation/CustomResources/getfromjson/bandit.yml",
    "Solutions/CodeBuildAndCodePipeline/codebuild-app-build.yml",
    "Solutions/CodeBuildAndCodePipeline/codebuild-app-deploy.yml",
];

/// Templates whose own defaults make them fail, as they would on AWS: both flow-log
/// parameters default to `No` while a rule demands one `Yes`; a Lambda references a
/// security group whose condition is false by default.
const INVALID_WITH_DEFAULTS: &[(&str, &str)] = &[
    (
        "Solutions/VPCFlowLogs/templates/VPCFlowLogs-main.cfn.yaml",
        "rule",
    ),
    (
        "Solutions/ADConnector/templates/ADCONNECTOR.cfn.yaml",
        "unknown-reference",
    ),
];

/// Property errors in the corpus that are real: cfn-lint (1.58, the version whose schemas are
/// bundled) reports each of them too, with the rule named. Any other property error is a
/// false one and fails the test.
const REAL_PROPERTY_ERRORS: &[(&str, &str, &str)] = &[
    // The parameter's name where `!Ref PrivateSubnet1ID` was meant.
    (
        "Solutions/ADConnector/templates/ADCONNECTOR.cfn.yaml",
        "Resources.ADConnectorLambdaFunction.Properties.VpcConfig.SubnetIds.0",
        "E3031",
    ),
    (
        "Solutions/ADConnector/templates/ADCONNECTOR.cfn.yaml",
        "Resources.ADConnectorLambdaFunction.Properties.VpcConfig.SubnetIds.1",
        "E3031",
    ),
];

/// Rejections that are right: "uses a feature Spindle does not run", or only the real
/// property mistakes above — not "we misread it".
const UNSUPPORTED: &[&str] = &[
    "real-property-errors",
    "macro",
    "rain-directive",
    "unsupported-transform",
    "not-a-template",
];

/// Stands in for the account: every SSM parameter and export exists.
struct Synthesized;
impl ExternalResolver for Synthesized {
    fn ssm_parameter(&self, _name: &str) -> Option<String> {
        Some("ami-0123456789abcdef0".into())
    }
    fn import_value(&self, name: &str) -> Option<String> {
        Some(format!("imported-{name}"))
    }
}

/// `SPINDLE_CFN_CORPUS`, or `shared/corpus/cfn-templates` beside the checkout or any folder
/// above it (a worktree sits deeper than the main checkout).
fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SPINDLE_CFN_CORPUS") {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/corpus/cfn-templates"))
        .find(|d| d.is_dir())
}

fn templates(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            templates(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json" | "template")
        ) {
            out.push(p);
        }
    }
}

/// The main category of a rejection: the "most fundamental" category among its diagnostics.
fn reason(diags: &[spindle_template::Diagnostic]) -> Category {
    let order = [
        Category::Syntax,
        Category::UnsupportedTransform,
        Category::Macro,
        Category::Rain,
        Category::Structure,
        Category::Quota,
        Category::Parameter,
        Category::UnknownReference,
        Category::UnknownCondition,
        Category::Intrinsic,
        Category::Cycle,
        Category::Rule,
        Category::Evaluation,
        Category::Property,
        Category::ProviderRule,
        Category::UnsupportedResourceType,
    ];
    order
        .into_iter()
        .find(|c| diags.iter().any(|d| d.category == *c))
        .unwrap_or(Category::Evaluation)
}

#[test]
fn corpus_conformance() {
    let Some(dir) = corpus_dir() else {
        println!("SKIPPED: CloudFormation corpus not found (set SPINDLE_CFN_CORPUS)");
        return;
    };
    let mut files = Vec::new();
    templates(&dir, &mut files);
    assert!(
        !files.is_empty(),
        "corpus at {} has no templates",
        dir.display()
    );
    let (mut read, mut planned, mut json_round_trips) = (0, 0, 0);
    let (mut checked_resources, mut real_property_errors) = (0, 0);
    let mut false_property_errors = Vec::new();
    let mut rejected: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let verbose = std::env::var_os("SPINDLE_CONFORMANCE_VERBOSE").is_some();
    for f in &files {
        let rel = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        let expect_reject = NOT_TEMPLATES.contains(&rel.as_str());
        let Ok(src) = std::fs::read_to_string(f) else {
            rejected.entry("unreadable").or_default().push(rel);
            continue;
        };
        let t = match parse(&src, &rel) {
            Ok(t) => t,
            Err(d) => {
                let r = if expect_reject {
                    "not-a-template"
                } else {
                    reason(&d.0).as_str()
                };
                if verbose || r == "syntax" {
                    println!("{d}");
                }
                rejected.entry(r).or_default().push(rel);
                continue;
            }
        };
        read += 1;
        // Property errors: each must be one of the known real mistakes.
        let known = |d: &spindle_template::Diagnostic| {
            d.category == Category::Property
                && REAL_PROPERTY_ERRORS
                    .iter()
                    .any(|(f, p, _)| *f == rel && *p == d.path)
        };
        checked_resources += t
            .resources
            .iter()
            .filter(|r| spindle_template::PropertySchemas::bundled().contains(&r.type_name))
            .count();
        for d in spindle_template::validate::properties(&t) {
            if known(&d) {
                real_property_errors += 1;
            } else {
                false_property_errors.push(d.to_string());
            }
        }
        // The same template written as JSON must read back to the same tree.
        let json = t.root.to_json().to_string();
        let back =
            spindle_template::read(&json, &rel).unwrap_or_else(|d| panic!("{rel} as JSON: {d}"));
        assert_eq!(
            back.to_json(),
            t.root.to_json(),
            "{rel}: JSON round trip differs"
        );
        json_round_trips += 1;
        assert!(!expect_reject, "{rel} is not a template but was accepted");
        let input = PlanInput {
            parameters: synthesize_missing(&t.parameters),
            external: &Synthesized,
            validate: ValidateOptions {
                // The corpus templates are deployed from S3, where the larger quota applies.
                max_body_bytes: spindle_template::template::quota::S3_BODY_BYTES,
                ..ValidateOptions::default()
            },
            ..PlanInput::default()
        };
        match plan(&t, &input) {
            Ok(p) => {
                planned += 1;
                assert!(p.graph.topo_order().is_ok());
            }
            Err(d) => {
                let rest: Vec<_> = d.0.iter().filter(|x| !known(x)).cloned().collect();
                if rest.is_empty() {
                    // Refused only for the real property mistakes listed above.
                    rejected
                        .entry("real-property-errors")
                        .or_default()
                        .push(rel);
                    continue;
                }
                if verbose {
                    println!("{d}");
                }
                rejected
                    .entry(reason(&rest).as_str())
                    .or_default()
                    .push(rel);
            }
        }
    }
    println!(
        "properties: {checked_resources} resources of registry types checked; {real_property_errors} real error(s) found (cfn-lint agrees), {} false",
        false_property_errors.len()
    );
    assert!(
        false_property_errors.is_empty(),
        "property errors on templates cfn-lint accepts: {false_property_errors:#?}"
    );
    println!(
        "corpus: {} templates, {read} read ({json_round_trips} also read back from JSON), {planned} validated and planned",
        files.len()
    );
    for (r, list) in &rejected {
        println!("  rejected ({r}): {}", list.len());
        for f in list {
            println!("    {f}");
        }
    }
    assert!(
        !rejected.contains_key("syntax"),
        "templates AWS accepts were rejected for syntax: {:?}",
        rejected.get("syntax")
    );
    let mut unexpected = Vec::new();
    for (reason, list) in &rejected {
        for f in list {
            let known = INVALID_WITH_DEFAULTS
                .iter()
                .any(|(p, r)| p == f && r == reason);
            if !known && !UNSUPPORTED.contains(reason) {
                unexpected.push(format!("{f} ({reason})"));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "unexpected rejections: {unexpected:#?}"
    );
}
