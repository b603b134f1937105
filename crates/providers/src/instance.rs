//! `AWS::EC2::Instance` over [`Runtime::launch`](spindle_runtime::Runtime::launch) and
//! `AWS::EC2::LaunchTemplate` (stored data only), with the helper auto scaling will use to
//! launch from a template version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use spindle_runtime::{Instance, InstanceState, LaunchSpec, SeccompProfile};
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::ec2_spec::{
    check_template_name, take_profile, InstanceSpec, LaunchData, LaunchTemplateSpec, INSTANCE,
    LAUNCH_TEMPLATE, LAUNCH_TEMPLATE_DATA,
};
use crate::error::Ec2Error;
use crate::network::{is_not_found, parse};
use crate::props::{observed, str_list_value, tags_value, Props, Shape};
use crate::rules::{missing_grant, SECCOMP_PROFILE_TAG};
use crate::state::LaunchTemplateRecord;
use crate::{derived_id, scoped_token, Ec2};

/// The tag that ties an instance to the idempotency token of the create that launched it.
pub const TOKEN_TAG: &str = "spindle:token";

/// How long an instance gets between SIGTERM and SIGKILL when its resource is deleted.
const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// Refuses a profile wider than the default unless the operation's caller holds the grant
/// (`Context::grants`, filled in by the daemon from the caller's grants and the account's
/// deny rules).
fn check_profile_grant(
    shape: &Shape,
    cx: &ResourceCx<'_>,
    profile: SeccompProfile,
) -> Result<(), Ec2Error> {
    if profile == SeccompProfile::Default
        || cx
            .context
            .grants
            .iter()
            .any(|g| g == crate::rules::SECCOMP_PROFILE_GRANT)
    {
        return Ok(());
    }
    Err(shape.invalid(missing_grant(&format!(
        "the `{}` seccomp profile",
        profile.name()
    ))))
}

pub(crate) fn version_number(
    rec: &LaunchTemplateRecord,
    version: Option<&str>,
) -> Result<u32, Ec2Error> {
    let latest = rec.versions.len() as u32;
    let n = match version.map(str::trim) {
        None | Some("" | "$Default") => rec.default_version,
        Some("$Latest") => latest,
        Some(v) => v.parse().unwrap_or(0),
    };
    if n == 0 || n > latest {
        return Err(Ec2Error::LaunchTemplateNotFound(format!(
            "{} version {}",
            rec.id,
            version.unwrap_or("$Default")
        )));
    }
    Ok(n)
}

/// What [`Ec2::launch_from_template`] takes besides the template: where to launch and what
/// to add (an auto scaling group gives its subnet and tags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchOverrides {
    pub subnet_id: String,
    /// Replaces the template's `SecurityGroupIds` when set.
    pub security_group_ids: Option<Vec<String>>,
    /// Replaces the template's `InstanceType` when set.
    pub instance_type: Option<String>,
    /// Added to (and overriding) the template's instance tags.
    pub tags: BTreeMap<String, String>,
}

impl Ec2 {
    /// The launch templates (`name` and version) whose `ImageId`, by id or tag, is
    /// `image_id`; an image they name must not be removed.
    pub fn launch_templates_using(&self, image_id: &str) -> Vec<String> {
        let t = self.store.lock();
        let mut out = Vec::new();
        for rec in t.launch_templates.values() {
            for (i, v) in rec.parsed.iter().enumerate() {
                // A version that no longer parses still names its image in its JSON.
                let named = match v {
                    Ok(d) => d.image.as_deref(),
                    Err(_) => rec.versions[i].get("ImageId").and_then(|x| x.as_str()),
                };
                if named.is_some_and(|n| {
                    n == image_id
                        || self
                            .runtime
                            .images()
                            .resolve(n)
                            .is_ok_and(|id| id == image_id)
                }) {
                    out.push(format!("launch template {} version {}", rec.name, i + 1));
                }
            }
        }
        out
    }

    /// The parsed `LaunchTemplateData` of a stored template version (`None`, `$Default`,
    /// `$Latest` or a number), by `lt-…` id or name.
    fn template_data(&self, template: &str, version: Option<&str>) -> Result<LaunchData, Ec2Error> {
        let t = self.store.lock();
        let rec = t
            .launch_templates
            .get(template)
            .or_else(|| t.launch_templates.values().find(|r| r.name == template))
            .ok_or_else(|| Ec2Error::LaunchTemplateNotFound(template.to_string()))?;
        let n = version_number(rec, version)?;
        rec.data(n).cloned()
    }

    /// The [`LaunchSpec`] for an instance of a stored launch template version.
    pub fn launch_spec_from_template(
        &self,
        template: &str,
        version: Option<&str>,
        overrides: &LaunchOverrides,
    ) -> Result<LaunchSpec, Ec2Error> {
        let mut i = self.template_data(template, version)?;
        if let Some(g) = &overrides.security_group_ids {
            i.security_groups = Some(g.clone());
        }
        if let Some(t) = &overrides.instance_type {
            i.instance_type = Some(t.clone());
        }
        i.tags.extend(overrides.tags.clone());
        let s = &LAUNCH_TEMPLATE_DATA;
        let seccomp = take_profile(s, &mut i.tags)?;
        Ok(LaunchSpec {
            image: i
                .image
                .ok_or_else(|| s.invalid(format!("launch template {template} has no ImageId")))?,
            instance_type: i.instance_type.ok_or_else(|| {
                s.invalid(format!("launch template {template} has no InstanceType"))
            })?,
            subnet_id: overrides.subnet_id.clone(),
            security_groups: i.security_groups.unwrap_or_default(),
            user_data: i.user_data,
            tags: i.tags,
            seccomp,
            ..Default::default()
        })
    }

    /// Launches an instance from a stored launch template version (blocking).
    pub fn launch_from_template(
        &self,
        template: &str,
        version: Option<&str>,
        overrides: &LaunchOverrides,
    ) -> Result<Instance, Ec2Error> {
        let spec = self.launch_spec_from_template(template, version, overrides)?;
        Ok(self.runtime.launch(spec)?)
    }

    /// The launch spec of an `AWS::EC2::Instance` resource (without its reserved tags): its
    /// own properties over its launch template's data.
    fn instance_spec(&self, p: &InstanceSpec) -> Result<LaunchSpec, Ec2Error> {
        let s = &INSTANCE;
        let base = match &p.template {
            None => LaunchData::default(),
            Some(t) => self.template_data(&t.template, t.version.as_deref())?,
        };
        let mut i = base.overlay(&p.own);
        let seccomp = take_profile(s, &mut i.tags)?;
        Ok(LaunchSpec {
            image: i.image.ok_or_else(|| s.invalid("ImageId is required"))?,
            instance_type: i.instance_type.ok_or_else(|| {
                s.invalid("InstanceType is required (Spindle has no default instance type)")
            })?,
            subnet_id: p.subnet.clone(),
            security_groups: i.security_groups.unwrap_or_default(),
            user_data: i.user_data,
            tags: i.tags,
            seccomp,
            ..Default::default()
        })
    }
}

pub fn private_dns_name(hostname: &str, region: &str) -> String {
    if region == "us-east-1" {
        format!("{hostname}.ec2.internal")
    } else {
        format!("{hostname}.{region}.compute.internal")
    }
}

fn instance_output(cx: &ResourceCx<'_>, i: &Instance) -> ProviderOutput {
    let az = cx
        .context
        .availability_zones
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{}a", cx.context.region));
    let attributes = [
        ("InstanceId", i.id.clone()),
        ("PrivateIp", i.private_ip.to_string()),
        (
            "PrivateDnsName",
            private_dns_name(&i.hostname, &cx.context.region),
        ),
        ("AvailabilityZone", az),
        ("VpcId", i.vpc_id.clone()),
        ("SubnetId", i.subnet_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::str(v)))
    .collect();
    ProviderOutput {
        physical_id: i.id.clone(),
        attributes,
    }
}

fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with("spindle:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn live(i: Instance) -> Option<Instance> {
    (i.state != InstanceState::Terminated).then_some(i)
}

fn find_by_token(ec2: &Ec2, tag: &str) -> Option<Instance> {
    ec2.runtime
        .list()
        .into_iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .find(|i| i.tags.get(TOKEN_TAG).map(String::as_str) == Some(tag))
}

/// `AWS::EC2::Instance`: a process tree in its own namespaces, booted from an image, with an
/// address in its subnet ([`spindle_runtime::Runtime::launch`]). Delete terminates it.
#[derive(Debug)]
pub struct InstanceProvider {
    ec2: Arc<Ec2>,
}

impl InstanceProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        InstanceProvider { ec2 }
    }
}

impl Provider for InstanceProvider {
    fn validate(
        &self,
        view: &spindle_template::ResourceView<'_>,
    ) -> Vec<spindle_template::Diagnostic> {
        crate::rules::check(view)
    }

    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let mut spec = self
                .ec2
                .instance_spec(&parse(InstanceSpec::parse(&req.properties))?)?;
            check_profile_grant(&INSTANCE, &cx, spec.seccomp)?;
            let account = cx.account()?;
            self.ec2.check_image_owner(&account, &spec.image)?;
            let tag = derived_id("token", &cx);
            spec.tags
                .insert("aws:cloudformation:stack-name".into(), cx.stack_name.into());
            spec.tags
                .insert("aws:cloudformation:logical-id".into(), cx.logical_id.into());
            spec.tags.insert(
                spindle_model::STACK_ID_TAG.into(),
                cx.context.stack_id.clone(),
            );
            spec.tags
                .insert(spindle_model::ACCOUNT_TAG.into(), account.to_string());
            spec.tags.insert(TOKEN_TAG.into(), tag.clone());
            let inst = self
                .ec2
                .run(&scoped_token(&cx), move |e| {
                    if let Some(i) = find_by_token(e, &tag) {
                        return Ok(i);
                    }
                    Ok(e.runtime.launch(spec)?)
                })
                .await?;
            Ok(instance_output(&cx, &inst))
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let spec = self
                .ec2
                .instance_spec(&parse(InstanceSpec::parse(&req.properties))?)?;
            INSTANCE.check_update(
                &req.changed,
                &["Tags"],
                "the runtime cannot resize, re-group or re-run the user data of an existing \
                 instance; replace it instead (for example under a new logical id)",
            )?;
            let id = req.physical_id.clone();
            let tags_changed = req.changed.iter().any(|c| c == "Tags");
            let inst = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let inst = e.runtime.describe(&id)?;
                    if inst.seccomp != spec.seccomp {
                        return Err(Ec2Error::Update {
                            type_name: INSTANCE.type_name,
                            properties: format!("Tags ({SECCOMP_PROFILE_TAG})"),
                            why: format!(
                                "instance {id} runs under the `{}` seccomp profile, fixed at launch; replace it instead (for example under a new logical id)",
                                inst.seccomp.name()
                            ),
                        });
                    }
                    if tags_changed {
                        let mut t = e.store.lock();
                        t.instance_tags.insert(id.clone(), spec.tags);
                        e.store.save(&t)?;
                    }
                    Ok(inst)
                })
                .await?;
            Ok(instance_output(&req.cx, &inst))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    match e.runtime.terminate(&id, TERMINATE_GRACE) {
                        Err(err) if !is_not_found(&err) => return Err(err.into()),
                        _ => {}
                    }
                    let mut t = e.store.lock();
                    if t.instance_tags.remove(&id).is_some() {
                        e.store.save(&t)?;
                    }
                    Ok(())
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let (by_id, key) = match &req.physical_id {
                Some(p) => (Some(p.clone()), format!("read/{p}")),
                None => (None, scoped_token(&cx)),
            };
            let tag = derived_id("token", &cx);
            let expected = req.properties.clone();
            let found = self
                .ec2
                .run(&key, move |e| {
                    let inst = match by_id {
                        Some(id) => e.runtime.describe(&id).ok().and_then(live),
                        None => find_by_token(e, &tag),
                    };
                    Ok(inst.map(|i| {
                        let tags = e.store.lock().instance_tags.get(&i.id).cloned();
                        // The launch spec the properties ask for, to tell `name:tag` from
                        // the `ami-…` it resolved to and template-supplied values from drift.
                        let want = InstanceSpec::parse(&expected)
                            .ok()
                            .and_then(|s| e.instance_spec(&s).ok())
                            .map(|mut s| {
                                s.image = e.runtime.images().resolve(&s.image).unwrap_or(s.image);
                                s
                            });
                        (i, tags, want)
                    }))
                })
                .await?;
            Ok(found.map(|(i, tags, want)| {
                let tags = tags.unwrap_or_else(|| user_tags(&i.tags));
                let own_tags = INSTANCE.tags(&req.properties, "Tags").unwrap_or_default();
                let w = want.as_ref();
                let p = observed(
                    &req.properties,
                    vec![
                        (
                            "ImageId",
                            Value::str(&i.image_id),
                            w.is_some_and(|w| w.image == i.image_id),
                        ),
                        (
                            "InstanceType",
                            Value::str(&i.instance_type),
                            w.is_some_and(|w| w.instance_type == i.instance_type),
                        ),
                        ("SubnetId", Value::str(&i.subnet_id), false),
                        (
                            "SecurityGroupIds",
                            str_list_value(&i.security_groups),
                            w.is_some_and(|w| w.security_groups == i.security_groups),
                        ),
                        (
                            "Tags",
                            tags_value(&tags),
                            w.is_some_and(|w| w.tags == tags)
                                || own_tags.iter().all(|(k, v)| tags.get(k) == Some(v)),
                        ),
                    ],
                );
                let out = instance_output(&cx, &i);
                ReadOutput {
                    physical_id: out.physical_id,
                    properties: p,
                    attributes: out.attributes,
                }
            }))
        })
    }
}

// ------------------------------------------------------------------------ launch templates

fn template_output(rec: &LaunchTemplateRecord) -> ProviderOutput {
    let attributes = [
        ("LaunchTemplateId", rec.id.clone()),
        ("LatestVersionNumber", rec.versions.len().to_string()),
        ("DefaultVersionNumber", rec.default_version.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::str(v)))
    .collect();
    ProviderOutput {
        physical_id: rec.id.clone(),
        attributes,
    }
}

/// `(name, spec)` of a `LaunchTemplate` resource; the data is parsed now so that a bad
/// template fails at its own create, not at the first launch.
fn template_spec(
    cx: &ResourceCx<'_>,
    p: &Props,
) -> Result<(String, LaunchTemplateSpec), ProviderError> {
    let spec = parse(LaunchTemplateSpec::parse(p))?;
    let name = match &spec.name {
        Some(n) => n.clone(),
        None => {
            let id = derived_id("lt", cx);
            let name = format!(
                "{}-{}-{}",
                cx.stack_name,
                cx.logical_id,
                &id["lt-".len().."lt-".len() + 8]
            );
            check_template_name(&name).map_err(|m| LAUNCH_TEMPLATE.invalid(m))?;
            name
        }
    };
    Ok((name, spec))
}

fn data_json(spec: &LaunchTemplateSpec) -> serde_json::Value {
    Value::Map(spec.raw.clone()).to_json()
}

/// The seccomp profile a launch template's data asks for (checked when it was parsed).
fn data_profile(data: &LaunchData) -> Result<SeccompProfile, Ec2Error> {
    data.profile().map_err(|m| LAUNCH_TEMPLATE_DATA.invalid(m))
}

/// `AWS::EC2::LaunchTemplate`: stored launch parameters with numbered versions. Updating
/// `LaunchTemplateData` adds a version and makes it the default.
#[derive(Debug)]
pub struct LaunchTemplateProvider {
    ec2: Arc<Ec2>,
}

impl LaunchTemplateProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        LaunchTemplateProvider { ec2 }
    }

    /// The template data's `ImageId`, if any, must be the stack's account's.
    fn check_image(&self, cx: &ResourceCx<'_>, data: &LaunchData) -> Result<(), ProviderError> {
        match &data.image {
            Some(image) => Ok(self.ec2.check_image_owner(&cx.account()?, image)?),
            None => Ok(()),
        }
    }
}

impl Provider for LaunchTemplateProvider {
    fn validate(
        &self,
        view: &spindle_template::ResourceView<'_>,
    ) -> Vec<spindle_template::Diagnostic> {
        crate::rules::check(view)
    }

    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let (name, spec) = template_spec(&req.cx, &req.properties)?;
            self.check_image(&req.cx, &spec.data)?;
            check_profile_grant(&LAUNCH_TEMPLATE, &req.cx, data_profile(&spec.data)?)?;
            let id = derived_id("lt", &req.cx);
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let mut t = e.store.lock();
                    if let Some(rec) = t.launch_templates.get(&id) {
                        return Ok(template_output(rec));
                    }
                    if t.launch_templates.values().any(|r| r.name == name) {
                        return Err(Ec2Error::LaunchTemplateExists(name));
                    }
                    let rec =
                        LaunchTemplateRecord::new(id.clone(), name, data_json(&spec), spec.data);
                    let out = template_output(&rec);
                    t.launch_templates.insert(id, rec);
                    e.store.save(&t)?;
                    Ok(out)
                })
                .await?;
            Ok(out)
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let (_, spec) = template_spec(&req.cx, &req.properties)?;
            self.check_image(&req.cx, &spec.data)?;
            LAUNCH_TEMPLATE.check_update(
                &req.changed,
                &["LaunchTemplateData"],
                "a launch template's name is fixed",
            )?;
            let profile = data_profile(&spec.data)?;
            // A profile an earlier version was granted stays granted for this template, so
            // a rollback to that version needs no grant from whoever deployed the update.
            let granted = check_profile_grant(&LAUNCH_TEMPLATE, &req.cx, profile);
            let id = req.physical_id.clone();
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let mut t = e.store.lock();
                    let rec = t
                        .launch_templates
                        .get_mut(&id)
                        .ok_or_else(|| Ec2Error::LaunchTemplateNotFound(id.clone()))?;
                    if let Err(refused) = granted {
                        let before = rec
                            .parsed
                            .iter()
                            .any(|v| v.as_ref().is_ok_and(|d| d.profile() == Ok(profile)));
                        if !before {
                            return Err(refused);
                        }
                    }
                    rec.push(data_json(&spec), spec.data);
                    let out = template_output(rec);
                    e.store.save(&t)?;
                    Ok(out)
                })
                .await?;
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let mut t = e.store.lock();
                    if t.launch_templates.remove(&id).is_some() {
                        e.store.save(&t)?;
                    }
                    Ok(())
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = match &req.physical_id {
                Some(p) => (p.clone(), format!("read/{p}")),
                None => (derived_id("lt", &req.cx), scoped_token(&req.cx)),
            };
            let found = self
                .ec2
                .run(&key, move |e| {
                    Ok(e.store.lock().launch_templates.get(&id).cloned())
                })
                .await?;
            Ok(found.map(|rec| {
                let latest = rec
                    .versions
                    .last()
                    .map(Value::from_json)
                    .unwrap_or(Value::Null);
                let agree = req
                    .properties
                    .get("LaunchTemplateData")
                    .is_some_and(|d| d.to_json() == latest.to_json());
                let p = observed(
                    &req.properties,
                    vec![
                        ("LaunchTemplateName", Value::str(&rec.name), false),
                        ("LaunchTemplateData", latest, agree),
                    ],
                );
                let out = template_output(&rec);
                ReadOutput {
                    physical_id: out.physical_id,
                    properties: p,
                    attributes: out.attributes,
                }
            }))
        })
    }
}
