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

use crate::error::Ec2Error;
use crate::network::is_not_found;
use crate::props::{base64_decode, observed, str_list_value, tags_value, Props, Shape};
use crate::rules::{missing_grant, requestable_names, requestable_profile, SECCOMP_PROFILE_TAG};
use crate::state::LaunchTemplateRecord;
use crate::{derived_id, scoped_token, Ec2};

/// The tag that ties an instance to the idempotency token of the create that launched it.
pub const TOKEN_TAG: &str = "spindle:token";

/// How long an instance gets between SIGTERM and SIGKILL when its resource is deleted.
const TERMINATE_GRACE: Duration = Duration::from_secs(10);

const INSTANCE: Shape = Shape {
    type_name: "AWS::EC2::Instance",
    used: &[
        "ImageId",
        "InstanceType",
        "SubnetId",
        "SecurityGroupIds",
        "UserData",
        "Tags",
        "LaunchTemplate",
    ],
    ignored: &[
        "AvailabilityZone",
        "BlockDeviceMappings",
        "CreditSpecification",
        "DisableApiTermination",
        "EbsOptimized",
        "IamInstanceProfile",
        "InstanceInitiatedShutdownBehavior",
        "KeyName",
        "MetadataOptions",
        "Monitoring",
        "PrivateDnsNameOptions",
        "PropagateTagsToVolumeOnCreation",
        "SourceDestCheck",
        "Tenancy",
    ],
    hints: &[
        ("NetworkInterfaces", "use SubnetId and SecurityGroupIds"),
        (
            "PrivateIpAddress",
            "addresses are assigned by the subnet's address pool",
        ),
        (
            "SecurityGroups",
            "use SecurityGroupIds (there is no default VPC)",
        ),
        ("Volumes", "EBS volumes are not implemented"),
        ("Ipv6Addresses", "IPv6 is not implemented"),
        ("Ipv6AddressCount", "IPv6 is not implemented"),
    ],
};

const LAUNCH_TEMPLATE: Shape = Shape {
    type_name: "AWS::EC2::LaunchTemplate",
    used: &["LaunchTemplateName", "LaunchTemplateData"],
    ignored: &["TagSpecifications", "VersionDescription"],
    hints: &[],
};

/// The keys of `LaunchTemplateData`.
const LAUNCH_TEMPLATE_DATA: Shape = Shape {
    type_name: "AWS::EC2::LaunchTemplate",
    used: &[
        "ImageId",
        "InstanceType",
        "UserData",
        "SecurityGroupIds",
        "TagSpecifications",
    ],
    ignored: &[
        "BlockDeviceMappings",
        "CreditSpecification",
        "DisableApiTermination",
        "EbsOptimized",
        "IamInstanceProfile",
        "InstanceInitiatedShutdownBehavior",
        "KeyName",
        "MetadataOptions",
        "Monitoring",
        "PrivateDnsNameOptions",
    ],
    hints: &[
        (
            "NetworkInterfaces",
            "give the subnet at launch (the instance's SubnetId or the group's VPCZoneIdentifier) and use SecurityGroupIds",
        ),
        ("SecurityGroups", "use SecurityGroupIds"),
        ("InstanceMarketOptions", "spot instances are not implemented"),
    ],
};

/// What an instance is launched with, from its properties over its launch template's data.
#[derive(Debug, Clone, Default, PartialEq)]
struct Inputs {
    image: Option<String>,
    instance_type: Option<String>,
    security_groups: Option<Vec<String>>,
    user_data: Option<String>,
    tags: BTreeMap<String, String>,
}

/// Takes the [`SECCOMP_PROFILE_TAG`] out of an instance's tags (it is a setting, not a tag
/// the instance keeps) and returns the profile it names; the default without one.
fn take_profile(
    shape: &Shape,
    tags: &mut BTreeMap<String, String>,
) -> Result<SeccompProfile, Ec2Error> {
    match tags.remove(SECCOMP_PROFILE_TAG) {
        None => Ok(SeccompProfile::Default),
        Some(name) => requestable_profile(&name).ok_or_else(|| {
            shape.invalid(format!(
                "tag {SECCOMP_PROFILE_TAG} `{name}` is not a seccomp profile an instance can ask for (expected one of: {})",
                requestable_names()
            ))
        }),
    }
}

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

/// The profile a launch template's data asks for.
fn data_profile(data: &Props) -> Result<SeccompProfile, Ec2Error> {
    take_profile(&LAUNCH_TEMPLATE_DATA, &mut data_inputs(data)?.tags)
}

fn decode_user_data(shape: &Shape, text: &str) -> Result<String, Ec2Error> {
    let bytes = base64_decode(text)
        .ok_or_else(|| shape.invalid("UserData must be base64 (wrap the script in Fn::Base64)"))?;
    String::from_utf8(bytes).map_err(|_| shape.invalid("UserData must decode to UTF-8 text"))
}

/// Reads `LaunchTemplateData` (checked strictly).
fn data_inputs(data: &Props) -> Result<Inputs, Ec2Error> {
    let s = &LAUNCH_TEMPLATE_DATA;
    s.check(data)?;
    let mut tags = BTreeMap::new();
    for spec in s.map_list(data, "TagSpecifications")?.unwrap_or_default() {
        if s.opt_str(spec, "ResourceType")?.as_deref() == Some("instance") {
            tags.extend(s.tags(spec, "Tags")?);
        }
    }
    Ok(Inputs {
        image: s.opt_str(data, "ImageId")?,
        instance_type: s.opt_str(data, "InstanceType")?,
        security_groups: data
            .contains_key("SecurityGroupIds")
            .then(|| s.str_list(data, "SecurityGroupIds"))
            .transpose()?,
        user_data: s
            .opt_str(data, "UserData")?
            .map(|u| decode_user_data(s, &u))
            .transpose()?,
        tags,
    })
}

/// The instance's own properties over `base` (its launch template's data).
fn own_inputs(p: &Props, base: Inputs) -> Result<Inputs, Ec2Error> {
    let s = &INSTANCE;
    let mut tags = base.tags;
    tags.extend(s.tags(p, "Tags")?);
    Ok(Inputs {
        image: s.opt_str(p, "ImageId")?.or(base.image),
        instance_type: s.opt_str(p, "InstanceType")?.or(base.instance_type),
        security_groups: if p.contains_key("SecurityGroupIds") {
            Some(s.str_list(p, "SecurityGroupIds")?)
        } else {
            base.security_groups
        },
        user_data: match s.opt_str(p, "UserData")? {
            Some(u) => Some(decode_user_data(s, &u)?),
            None => base.user_data,
        },
        tags,
    })
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
            for (i, v) in rec.versions.iter().enumerate() {
                let named = v.get("ImageId").and_then(|x| x.as_str());
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

    /// The `LaunchTemplateData` of a stored template version (`None`, `$Default`,
    /// `$Latest` or a number), by `lt-…` id or name.
    fn template_data(&self, template: &str, version: Option<&str>) -> Result<Props, Ec2Error> {
        let t = self.store.lock();
        let rec = t
            .launch_templates
            .get(template)
            .or_else(|| t.launch_templates.values().find(|r| r.name == template))
            .ok_or_else(|| Ec2Error::LaunchTemplateNotFound(template.to_string()))?;
        let n = version_number(rec, version)?;
        match Value::from_json(&rec.versions[n as usize - 1]) {
            Value::Map(m) => Ok(m),
            _ => Ok(Props::new()),
        }
    }

    /// The [`LaunchSpec`] for an instance of a stored launch template version.
    pub fn launch_spec_from_template(
        &self,
        template: &str,
        version: Option<&str>,
        overrides: &LaunchOverrides,
    ) -> Result<LaunchSpec, Ec2Error> {
        let mut i = data_inputs(&self.template_data(template, version)?)?;
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

    /// The launch spec of an `AWS::EC2::Instance` resource (without its reserved tags).
    fn instance_spec(&self, p: &Props) -> Result<LaunchSpec, Ec2Error> {
        let s = &INSTANCE;
        s.check(p)?;
        let base = match p.get("LaunchTemplate") {
            None | Some(Value::Null | Value::NoValue) => Inputs::default(),
            Some(Value::Map(lt)) => {
                let template = match s.opt_str(lt, "LaunchTemplateId")? {
                    Some(id) => id,
                    None => s.opt_str(lt, "LaunchTemplateName")?.ok_or_else(|| {
                        s.invalid("LaunchTemplate needs LaunchTemplateId or LaunchTemplateName")
                    })?,
                };
                let version = s.opt_str(lt, "Version")?;
                data_inputs(&self.template_data(&template, version.as_deref())?)?
            }
            Some(v) => return Err(s.invalid(format!("LaunchTemplate must be a map, got {v}"))),
        };
        let mut i = own_inputs(p, base)?;
        let seccomp = take_profile(s, &mut i.tags)?;
        Ok(LaunchSpec {
            image: i.image.ok_or_else(|| s.invalid("ImageId is required"))?,
            instance_type: i.instance_type.ok_or_else(|| {
                s.invalid("InstanceType is required (Spindle has no default instance type)")
            })?,
            subnet_id: s
                .opt_str(p, "SubnetId")?
                .ok_or_else(|| s.invalid("SubnetId is required (Spindle has no default VPC)"))?,
            security_groups: i.security_groups.unwrap_or_default(),
            user_data: i.user_data,
            tags: i.tags,
            seccomp,
            ..Default::default()
        })
    }
}

fn private_dns_name(hostname: &str, region: &str) -> String {
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
            let mut spec = self.ec2.instance_spec(&req.properties)?;
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
            let spec = self.ec2.instance_spec(&req.properties)?;
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
                        let want = e.instance_spec(&expected).ok().map(|mut s| {
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

/// `(name, data)` of a `LaunchTemplate` resource; the data is checked now so that a bad
/// template fails at its own create, not at the first launch.
fn template_spec(cx: &ResourceCx<'_>, p: &Props) -> Result<(String, Props), Ec2Error> {
    let s = &LAUNCH_TEMPLATE;
    s.check(p)?;
    let data = match p.get("LaunchTemplateData") {
        Some(Value::Map(m)) => m.clone(),
        Some(v) => return Err(s.invalid(format!("LaunchTemplateData must be a map, got {v}"))),
        None => return Err(s.invalid("LaunchTemplateData is required")),
    };
    data_inputs(&data)?;
    let name = match s.opt_str(p, "LaunchTemplateName")? {
        Some(n) => n,
        None => {
            let id = derived_id("lt", cx);
            format!(
                "{}-{}-{}",
                cx.stack_name,
                cx.logical_id,
                &id["lt-".len().."lt-".len() + 8]
            )
        }
    };
    if name.len() < 3
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()./_-".contains(c))
    {
        return Err(s.invalid(format!(
            "LaunchTemplateName `{name}` must be 3 to 128 characters of letters, digits and ( ) . / _ -"
        )));
    }
    Ok((name, data))
}

fn data_json(data: &Props) -> serde_json::Value {
    Value::Map(data.clone()).to_json()
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
    fn check_image(&self, cx: &ResourceCx<'_>, data: &Props) -> Result<(), ProviderError> {
        match data.get("ImageId").and_then(|v| v.as_str()) {
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
            let (name, data) = template_spec(&req.cx, &req.properties)?;
            self.check_image(&req.cx, &data)?;
            check_profile_grant(&LAUNCH_TEMPLATE, &req.cx, data_profile(&data)?)?;
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
                    let rec = LaunchTemplateRecord {
                        id: id.clone(),
                        name,
                        versions: vec![data_json(&data)],
                        default_version: 1,
                    };
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
            let (_, data) = template_spec(&req.cx, &req.properties)?;
            self.check_image(&req.cx, &data)?;
            LAUNCH_TEMPLATE.check_update(
                &req.changed,
                &["LaunchTemplateData"],
                "a launch template's name is fixed",
            )?;
            let profile = data_profile(&data)?;
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
                        let before = rec.versions.iter().any(|v| match Value::from_json(v) {
                            Value::Map(m) => data_profile(&m).ok() == Some(profile),
                            _ => false,
                        });
                        if !before {
                            return Err(refused);
                        }
                    }
                    let j = data_json(&data);
                    // A retried update finds its version already there.
                    if rec.versions.last() != Some(&j) {
                        rec.versions.push(j);
                    }
                    rec.default_version = rec.versions.len() as u32;
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
