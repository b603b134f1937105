//! # spindle-template: CloudFormation templates, read, evaluated, ordered and diffed
//!
//! This crate is the pure half of Spindle's stacks: it turns the text of a real
//! CloudFormation template (YAML or JSON) into a plan of resources to create, in which
//! order, and into a change set against a deployed stack. It does no I/O, no HTTP and no
//! SQL; the stack executor (in the server) calls providers and stores state.
//!
//! ## Entry points
//! - [`parse`]: text → [`Template`] (reader + section shapes + quotas), or every problem.
//! - [`validate()`]: static checks with positions and template paths, all at once, including
//!   every resource's `Properties` against its type's registry schema ([`PropertySchemas`],
//!   bundled compressed, decoded per type on first use); a [`ValidateOptions::supported_type`]
//!   hook says which resource types this installation can provision, and
//!   [`ValidateOptions::resource_rules`] lets the providers add their own checks.
//! - [`plan()`]: parameters + [`Context`] → [`Plan`] (evaluated conditions, resources with
//!   plan-time values, outputs, dependency [`Graph`]). Runs `validate` first.
//! - [`Plan::resolve_resource`] / [`Plan::resolve_outputs`]: apply time, with a
//!   [`ResourceResolver`] that knows physical ids and attributes of created resources.
//! - [`Graph::topo_order`], [`Graph::ready`], [`Graph::scheduler`], [`Graph::reverse_order`],
//!   [`Graph::ready_for_delete`]: ordering for a parallel executor.
//! - [`changeset::classify`]: deployed [`StackState`] + new [`Plan`] → [`ChangeSet`].
//! - [`synthetic_template`]: an N-resource template for benchmarks.
//!
//! ## Example
//! ```
//! use spindle_template::{classify, parse, plan, MapResolver, NoExternal, PlanInput, ResourceSchemas, StackState};
//!
//! let src = "Parameters:\n  Cidr: {Type: String, Default: 10.0.0.0/16}\n\
//!            Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: !Ref Cidr}\n\
//!            \x20 Subnet:\n    Type: AWS::EC2::Subnet\n    Properties:\n      VpcId: !Ref Vpc\n\
//!            \x20     CidrBlock: !Select [0, !Cidr [!Ref Cidr, 2, 8]]\n";
//! let template = parse(src, "stack.yaml").expect("valid template");
//! let plan = plan(&template, &PlanInput::default()).expect("plans");
//! assert_eq!(plan.graph.topo_order().unwrap(), ["Vpc", "Subnet"]);
//!
//! // What a change set against an empty stack would do: add both.
//! let cs = classify(&StackState::default(), &plan, ResourceSchemas::bundled(), &NoExternal).unwrap();
//! assert_eq!(cs.changes.len(), 2);
//!
//! // Apply time: the executor creates Vpc, then resolves Subnet with Vpc's physical id.
//! let mut created = MapResolver::default();
//! created.physical_ids.insert("Vpc".into(), "vpc-0a1b".into());
//! let subnet = plan.resolve_resource("Subnet", &created, &NoExternal).unwrap();
//! assert_eq!(subnet.properties["VpcId"].to_string(), "vpc-0a1b");
//! assert_eq!(subnet.properties["CidrBlock"].to_string(), "10.0.0.0/24");
//! ```
//!
//! ## Invariants
//! - Every [`ast::Node`] has a position; short (`!Ref`) and long (`Ref:`) forms give the same
//!   node. Diagnostics carry file, line:column and a dotted template path.
//! - No input makes the crate panic (checked by property tests on random bytes and mutated
//!   templates); deep nesting is refused, not recursed into.
//! - What AWS rejects we reject: YAML aliases and merge keys, duplicate keys, unknown
//!   sections, unsupported YAML tags, the template quotas. What AWS runs but we don't
//!   (SAM, macros, modules, `Fn::Transform`) is reported as unsupported, never guessed at.
//! - `NoEcho` parameters are masked as `****` in every rendering (parameters, properties,
//!   outputs, change-set details).

pub mod ast;
pub mod changeset;
pub mod cidr;
pub mod diag;
pub mod dynref;
pub mod eval;
mod foreach;
pub mod graph;
mod json;
pub mod nested;
pub mod params;
pub mod plan;
mod props;
pub mod schema;
mod synth;
pub mod template;
pub mod validate;
pub mod value;
mod yaml;

pub use changeset::{classify, Action, ChangeSet, Replacement, ResourceSchemas, StackState};
pub use diag::{Category, Diagnostic, Diagnostics, Pos};
pub use eval::{Context, MapResolver, ResourceResolver, Unresolved};
pub use graph::Graph;
pub use nested::{is_remote_url, nested_refs, nested_template_path, NestedRef};
pub use params::{ExternalResolver, NoExternal, ParamType};
pub use plan::{plan, Plan, PlanInput, PlannedOutput, PlannedResource};
pub use props::did_you_mean as suggest;
pub use schema::PropertySchemas;
pub use synth::synthetic_template;
pub use template::Template;
pub use validate::{validate, ResourceView, ValidateOptions};
pub use value::Value;

use diag::Sink;

/// Reads template text (JSON when it starts with `{`, YAML otherwise) into a syntax tree.
pub fn read(src: &str, file: &str) -> Result<ast::Node, Diagnostics> {
    let mut sink = Sink::new(file);
    let node = read_into(src, &mut sink);
    match node {
        Some(n) if sink.diags.is_empty() => Ok(n),
        _ => Err(Diagnostics(sink.diags)),
    }
}

fn read_into(src: &str, sink: &mut Sink) -> Option<ast::Node> {
    let first = src
        .trim_start_matches('\u{feff}')
        .trim_start()
        .chars()
        .next();
    if first == Some('{') {
        json::read(src, sink)
    } else {
        yaml::read(src, sink)
    }
}

/// Reads and structures a template. `Err` carries every syntax and structure problem.
pub fn parse(src: &str, file: &str) -> Result<Template, Diagnostics> {
    let mut sink = Sink::new(file);
    let Some(root) = read_into(src, &mut sink) else {
        return Err(Diagnostics(sink.diags));
    };
    let mut t = Template::build_lenient(&mut sink, file, root);
    t.body_bytes = src.len();
    if src.len() > template::quota::S3_BODY_BYTES {
        sink.push(
            Category::Quota,
            Pos::new(1, 1),
            "",
            format!(
                "the template body is {} bytes, over the quota of {}",
                src.len(),
                template::quota::S3_BODY_BYTES
            ),
        );
    }
    if sink.diags.is_empty() {
        Ok(t)
    } else {
        Err(Diagnostics(sink.diags))
    }
}
