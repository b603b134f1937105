//! The command line: every subcommand, flag and its help text.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "spindle",
    version,
    about = "Run an auto-scaling web application on your own machine",
    long_about = "Spindle runs an auto-scaling web application from real CloudFormation templates, \
                  baked images and a signed apt repository, on one machine. `spindle server` is \
                  the daemon; every other command talks to it over its REST API.",
    after_help = "Start here: `spindle up examples/twine`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The daemon's URL [default: the profile's endpoint, else http://127.0.0.1:7420]
    #[arg(long, global = true, env = "SPINDLE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The credentials profile to use
    #[arg(
        long,
        global = true,
        env = "SPINDLE_PROFILE",
        default_value = "default"
    )]
    pub profile: String,
    /// The credentials file [default: ~/.config/spindle/credentials]
    #[arg(long, global = true, env = "SPINDLE_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,
    /// The account to act in (name or 12-digit id) [default: the credential's own]
    #[arg(long, global = true, env = "SPINDLE_ACCOUNT")]
    pub account: Option<String>,
    /// How to print results
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground
    Server(ServerArgs),
    /// Bring a project directory up: start the daemon if needed, then do every step that is out of date
    Up(UpArgs),
    /// Take a project down: delete its stacks (reverse order); `--all` also its images, repos and records
    Down(DownArgs),
    /// Show which account and credential this profile uses
    Whoami,
    /// Manage accounts and their access keys
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage roles: grants that let another account act in this one
    #[command(subcommand)]
    Role(RoleCmd),
    /// Get short-lived credentials for a role that trusts this account (like `aws sts assume-role`)
    Assume(AssumeArgs),
    /// Manage deny rules that no principal of an account can override (admin only)
    #[command(subcommand)]
    Deny(DenyCmd),
    /// Read the audit log: every change and every refused call
    Audit(AuditArgs),
    /// SSH through the account's bastion: `ssh cert`, `ssh config`, `ssh INSTANCE [-- CMD]`
    Ssh(crate::commands::ssh::SshArgs),
    /// Manage the parameter store (like SSM Parameter Store)
    #[command(subcommand)]
    Param(ParamCmd),
    /// Manage secrets (like AWS Secrets Manager): list, get, put, rotate
    #[command(subcommand)]
    Secret(crate::commands::secret::SecretCmd),
    /// DB instances and their snapshots (like Amazon RDS): instances, snapshot list|create|delete|restore
    #[command(subcommand)]
    Rds(crate::commands::rds::RdsCmd),
    /// Validate CloudFormation templates
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Build pipelines: GitHub Actions workflows checked offline, and the runs pushes start
    #[command(subcommand)]
    Pipeline(PipelineCmd),
    /// Open the daemon's web page of pipeline runs: prints a one-time sign-in URL
    Ui,
    /// Host git repositories: `git push` to them starts their workflows
    #[command(subcommand)]
    Git(crate::commands::git::GitCmd),
    /// Deploy and inspect stacks from CloudFormation templates
    #[command(subcommand)]
    Stack(StackCmd),
    /// Inspect and control instances (stacks launch them)
    #[command(subcommand)]
    Instance(InstanceCmd),
    /// Inspect and steer auto scaling groups (stacks create them)
    #[command(subcommand)]
    Asg(crate::commands::asg::AsgCmd),
    /// Drive HTTP load at a loopback URL, per tenant, with a live view and a plot at the end
    Load(crate::commands::load::LoadArgs),
    /// Import and list machine images (what instances boot)
    #[command(subcommand)]
    Image(ImageCmd),
    /// Inspect load balancers (stacks create them), their targets, health and metrics
    #[command(subcommand)]
    Lb(LbCmd),
    /// Inspect hosted zones (stacks create them) and ask the DNS server for a name
    #[command(subcommand)]
    Dns(crate::commands::dns::DnsCmd),
    /// Find (and with --fix remove) namespaces, mounts, veths and cgroups no instance or VPC
    /// accounts for (admin only)
    Doctor {
        #[arg(long)]
        fix: bool,
    },
    /// Manage local apt repositories (aptly's `repo`)
    #[command(subcommand)]
    Repo(crate::commands::apt::RepoCmd),
    /// Freeze, compare, merge and filter package sets (aptly's `snapshot`)
    #[command(subcommand)]
    Snapshot(crate::commands::apt::SnapshotCmd),
    /// Publish signed apt repositories the daemon serves (aptly's `publish`)
    #[command(subcommand)]
    Publish(crate::commands::apt::PublishCmd),
    /// Mirror remote apt repositories, verified (aptly's `mirror`)
    #[command(subcommand)]
    Mirror(crate::commands::apt::MirrorCmd),
    /// Manage the OpenPGP keys that sign publications
    #[command(subcommand)]
    Key(crate::commands::apt::KeyCmd),
    /// Housekeeping of the package pool (admin only)
    #[command(subcommand)]
    Db(crate::commands::apt::DbCmd),
    /// Build and inspect .deb packages (local; no daemon needed)
    #[command(subcommand)]
    Pkg(PkgCmd),
    /// Bake images from Packer-style HCL2 recipes, one cached layer per step
    #[command(subcommand)]
    Bake(BakeCmd),
    /// Run a baked recipe as a long-lived local box with the project directory mounted
    #[command(subcommand)]
    Devbox(crate::commands::devbox::DevboxCmd),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where the daemon keeps its state [default: /var/lib/spindle as root, else ~/.local/state/spindle]
    #[arg(long, env = "SPINDLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address the API listens on
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Name every namespace, veth and cgroup the runtime creates `<PREFIX>-…` (1-10 of a-z0-9)
    #[arg(long, default_value = "spindle")]
    pub runtime_prefix: String,
    /// Run without instances and networks (EC2 resource types become unsupported)
    #[arg(long)]
    pub no_runtime: bool,
    /// Bind every load balancer to this address [default: each its own 127.a.b.c]
    #[arg(long)]
    pub lb_address: Option<std::net::IpAddr>,
    /// Seconds a target-tracking metric must stay under its target before the group scales
    /// in [default: 60]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub asg_scale_in_seconds: Option<u64>,
    /// The AWS-compatible endpoint's address, or `off` [default: 127.0.0.1:4566, skipped
    /// with a warning if another process holds it]
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen)]
    pub aws_listen: Option<Listen>,
    /// Where the SSH bastion (the jump host for `ssh -J`) listens; `off` runs none
    #[arg(
        long,
        value_name = "ADDR|off",
        default_value = "127.0.0.1:2222",
        env = "SPINDLE_SSH_LISTEN",
        value_parser = parse_listen
    )]
    pub ssh_listen: Listen,
    /// Serve the public hosted zones on this address, UDP and TCP (port 0: a free one)
    /// [default: 127.0.0.1:5353, skipped with an error in the log if taken]
    #[arg(long, env = "SPINDLE_DNS_LISTEN", value_name = "ADDR")]
    pub dns_listen: Option<std::net::SocketAddr>,
    /// Run without the DNS server (hosted zones are still kept)
    #[arg(long, conflicts_with = "dns_listen")]
    pub no_dns: bool,
    /// Don't serve: mint a new admin credential for the data dir and write it to the
    /// credentials file (under --profile if that is free, else a name of its own), revoking
    /// nothing. The way back in when the admin secret is lost. Run it on the daemon's host as
    /// root (or the data dir's owner) with the daemon stopped
    #[arg(long)]
    pub new_admin_credential: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The project directory (holding spindle.toml)
    pub dir: PathBuf,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Show the plan without doing anything
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each printed URL to serve (a healthy target behind its load
    /// balancer); 0 prints the URLs without waiting
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The project directory (holding spindle.toml)
    pub dir: PathBuf,
    /// Delete without asking (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also remove the project's images, drop its publications, repos and signing keys, and
    /// forget what `up` recorded (accounts are always kept)
    #[arg(long)]
    pub all: bool,
    /// Delete stacks even when that deletes a database (each is kept in a named final
    /// snapshot first); without it such a stack's delete is refused as data loss
    #[arg(long)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Create an account (admin only)
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the accounts this credential can see
    List,
    /// Show one account
    Describe { name: String },
    /// Delete an account with its keys and roles; refused while it holds resources (admin only)
    Delete { name: String },
    /// Manage access keys
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create an access key; the secret is shown once
    Create {
        /// Limit the key to these actions (repeatable; e.g. `param:Get`, `stack:*`) [default: all]
        #[arg(long = "allow")]
        allow: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Also save the key to the credentials file under this profile name
        #[arg(long)]
        save_profile: Option<String>,
        /// An AWS-compatible key: the daemon keeps its secret (sealed) so the `aws` CLI and
        /// boto3 can sign with it (SigV4)
        #[arg(long)]
        aws: bool,
        /// Save the key as this profile of the `aws` CLI (~/.aws/credentials, and ~/.aws/config
        /// with the region and Spindle's endpoint_url); implies --aws
        #[arg(long, value_name = "NAME")]
        save_aws_profile: Option<String>,
    },
    /// List the account's access keys
    List,
    /// Revoke an access key; it stops working at once
    Revoke { access_key_id: String },
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Create a role that trusted accounts may assume
    Create {
        name: String,
        /// An account whose principals may assume the role (repeatable; name or 12-digit id)
        #[arg(long = "trust", required = true)]
        trust: Vec<String>,
        /// Actions the role allows (repeatable; e.g. `stack:*`)
        #[arg(long = "allow", required = true)]
        allow: Vec<String>,
        /// The longest session it grants, e.g. `1h`, `15m`, `3600`
        #[arg(long)]
        max_session_duration: Option<String>,
    },
    /// List the account's roles
    List,
    /// Show one role
    Describe { name: String },
    /// Delete a role (sessions already issued run until they expire)
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct AssumeArgs {
    /// The role's name
    pub role: String,
    /// The role's account, when several trusted roles share the name
    #[arg(long = "role-account")]
    pub role_account: Option<String>,
    /// How long the credentials last, e.g. `15m`, `1h`, `900` [default: 1h, at most the role's maximum]
    #[arg(long)]
    pub duration: Option<String>,
    #[arg(long)]
    pub session_name: Option<String>,
    /// Save the credentials to the credentials file under this profile name
    #[arg(long)]
    pub save_profile: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DenyCmd {
    /// Forbid actions in an account (the --account flag), whatever its keys and roles allow
    Add {
        pattern: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List an account's deny rules
    List,
    /// Remove a deny rule by its id
    Remove { id: i64 },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records from this long ago (`10m`, `2h`, `1d`) or this RFC 3339 time
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many records
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    /// Only the records of this service among them (`ssh` for the bastion's logins and
    /// connections, or a service such as `stack`, `key`)
    #[arg(long)]
    pub kind: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ParamCmd {
    /// Create or (with --overwrite) update a parameter
    Put {
        name: String,
        value: String,
        #[arg(long = "type", default_value = "String", value_parser = ["String", "StringList", "SecureString"])]
        kind: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        overwrite: bool,
    },
    /// Show a parameter
    Get {
        name: String,
        /// Show a SecureString's value
        #[arg(long)]
        decrypt: bool,
    },
    /// List parameters
    List {
        /// Only names starting with this
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Delete a parameter
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PkgCmd {
    /// Build a .deb from a package spec (TOML). Reproducible: the same inputs and
    /// SOURCE_DATE_EPOCH give a byte-identical file
    Build {
        /// The spec file; paths inside it are relative to its directory
        spec: PathBuf,
        /// Where to write the .deb
        #[arg(long, short = 'd', default_value = ".")]
        output_dir: PathBuf,
        /// Timestamp for every file in the package [default: now]
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        source_date_epoch: Option<u64>,
    },
    /// Show a .deb's control fields, digests and (with --contents) its files
    Inspect {
        file: PathBuf,
        #[arg(long)]
        contents: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCmd {
    /// Report every problem in a template with its position, and the resource types Spindle
    /// can't provision yet. Asks the daemon when one answers (or `--endpoint` is given);
    /// without one, checks with the resource types this build provisions
    Validate {
        file: PathBuf,
        /// Check without asking a daemon, even when one is running
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Check workflow files offline (no daemon): every problem at once with file:line:column,
    /// the job graph and matrix sizes of the valid ones; exits non-zero on any problem
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the runs pushes started, newest first (only REPO's when given)
    Runs {
        repo: Option<String>,
        /// At most this many
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show a run's jobs and steps with each step's status and log
    Logs {
        run: i64,
        /// Only this job
        #[arg(long)]
        job: Option<String>,
        /// Keep showing log lines and status changes as they happen, until the run ends
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Start a workflow_dispatch run of WORKFLOW (a file under .github/workflows/) in REPO
    Dispatch {
        repo: String,
        workflow: String,
        /// Branch, tag or full ref (default: main)
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// An input, KEY=VALUE (repeatable)
        #[arg(short = 'f', long = "field", value_name = "KEY=VALUE")]
        fields: Vec<String>,
    },
    /// Cancel a queued or running run
    Cancel { run: i64 },
    /// Run an ended run again, as a new attempt (a new run id)
    Rerun {
        run: i64,
        /// Only the failed and cancelled jobs and the jobs that need them; the others keep
        /// their results and outputs
        #[arg(long)]
        failed: bool,
    },
}

impl PipelineCmd {
    /// Whether the command needs no daemon.
    pub fn offline(&self) -> bool {
        matches!(self, PipelineCmd::Validate { .. })
    }
}

#[derive(Debug, Subcommand)]
pub enum StackCmd {
    /// Create or update a stack: shows the change set, asks, then deploys and waits
    Deploy {
        name: String,
        /// The CloudFormation template (YAML or JSON)
        file: PathBuf,
        /// A parameter value, `Key=Value` (repeatable; lists comma-separated)
        #[arg(long = "parameter", short = 'p', value_name = "KEY=VALUE")]
        parameters: Vec<String>,
        /// Keep a parameter's value from the last deploy, NoEcho ones too (repeatable)
        #[arg(long = "use-previous-value", value_name = "KEY")]
        use_previous: Vec<String>,
        /// Deploy without asking
        #[arg(long, short = 'y')]
        yes: bool,
        /// Show the change set and stop
        #[arg(long)]
        preview: bool,
        /// On failure, keep what was created instead of rolling back
        #[arg(long)]
        disable_rollback: bool,
        /// Protect the stack from deletion (`stack update-termination-protection` lifts it)
        #[arg(long)]
        enable_termination_protection: bool,
        /// Set the stack policy (a JSON file, as CloudFormation's StackPolicyBody)
        #[arg(long, value_name = "FILE")]
        stack_policy: Option<PathBuf>,
        /// A stack policy for this update only (overrides the stack's)
        #[arg(long, value_name = "FILE")]
        stack_policy_during_update: Option<PathBuf>,
        /// Also update resources that drifted (see `stack drift`) back to the template
        #[arg(long)]
        revert_drift: bool,
        /// Go ahead although a stateful resource (database, cache, search domain, volume,
        /// secret) is replaced or deleted and its data lost
        #[arg(long)]
        allow_data_loss: bool,
    },
    /// Create, review, execute and delete named change sets
    #[command(subcommand)]
    Changeset(ChangesetCmd),
    /// Turn termination protection on or off (a protected stack can't be deleted)
    UpdateTerminationProtection {
        name: String,
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Set a stack's policy (which resources updates may modify, replace or delete)
    SetPolicy {
        name: String,
        /// The policy (JSON)
        file: PathBuf,
    },
    /// List the exports of the account's stacks and who imports them
    Exports,
    /// List the stacks that import an export
    Imports { export: String },
    /// List the account's stacks
    List,
    /// Show a stack's status, outputs and resources
    Describe { name: String },
    /// Show a stack's events, oldest first
    Events { name: String },
    /// Show a stack's outputs
    Outputs { name: String },
    /// Show a stack's resources
    Resources { name: String },
    /// Compare each resource with what its provider reads back
    Drift { name: String },
    /// Print a stack's template exactly as it was submitted (or a change set's)
    Template {
        name: String,
        /// A change set of the stack: print its template instead
        #[arg(long = "change-set")]
        change_set: Option<String>,
    },
    /// Finish a rollback that failed (UPDATE_ROLLBACK_FAILED), skipping resources that can't
    /// be rolled back
    ContinueRollback {
        name: String,
        /// A logical id to leave as it is (repeatable)
        #[arg(long = "skip")]
        skip: Vec<String>,
    },
    /// Delete a stack and its resources
    Delete {
        name: String,
        /// Delete without asking
        #[arg(long, short = 'y')]
        yes: bool,
        /// Go ahead although a stateful resource (database, cache, search domain, volume,
        /// secret) is replaced or deleted and its data lost
        #[arg(long)]
        allow_data_loss: bool,
    },
}

/// `spindle bake …` takes Packer's single-dash flags (`-var K=V`, `-var-file F`, `-only NAMES`,
/// `-except NAMES`, `-on-error=cleanup|abort|shell`) as well as double-dash ones, so they are
/// parsed by `commands::bake` rather than by clap.
#[derive(Debug, Subcommand)]
pub enum BakeCmd {
    /// Bake: spindle bake build [-var K=V]… [-var-file F]… [-only|-except NAMES]
    /// [-on-error=cleanup|abort|shell] [-cache-dir DIR] [-no-import] RECIPE.pkr.hcl
    Build {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Check a recipe: every problem with file:line:column (takes -var/-var-file/-only/-except)
    Validate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Show the plan: each build's steps, cache keys and which are cached
    Inspect {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Rewrite recipes in canonical layout (-check: only report files that would change)
    Fmt {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChangesetCmd {
    /// Plan a template against a stack and keep the change set under NAME
    Create {
        name: String,
        stack: String,
        /// The CloudFormation template (YAML or JSON)
        file: PathBuf,
        /// A parameter value, `Key=Value` (repeatable; lists comma-separated)
        #[arg(long = "parameter", short = 'p', value_name = "KEY=VALUE")]
        parameters: Vec<String>,
        /// Keep a parameter's value from the last deploy (repeatable)
        #[arg(long = "use-previous-value", value_name = "KEY")]
        use_previous: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a change set: each resource's action and replacement, each property before/after
    Describe { name: String, stack: String },
    /// Execute a change set (refused if the stack changed since it was created)
    Execute {
        name: String,
        stack: String,
        #[arg(long)]
        disable_rollback: bool,
        /// Go ahead although a stateful resource (database, cache, search domain, volume,
        /// secret) is replaced or deleted and its data lost
        #[arg(long)]
        allow_data_loss: bool,
    },
    /// Delete a change set
    Delete { name: String, stack: String },
    /// List a stack's change sets
    List { stack: String },
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import a rootfs tarball (.tar, .tar.gz, .tar.zst), OCI layout directory or oci-archive
    /// from this machine
    Import {
        file: PathBuf,
        /// A `name:tag` alias, usable as ImageId in templates
        #[arg(long)]
        tag: Option<String>,
        /// The command instances run (for rootfs tarballs), e.g. --cmd httpd --cmd -f
        #[arg(long = "cmd", allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// List the account's images
    List,
    /// Show an image's configuration, layers and what uses it
    Inspect { image: String },
    /// Point a name:tag alias at an image
    Tag { image: String, tag: String },
    /// Remove an image (refused while an instance or launch template uses it)
    Rm { image: String },
    /// Write an image to a new file or directory on this machine
    Export {
        image: String,
        /// Where to write; must not exist yet
        out: PathBuf,
        /// rootfs (one tar of the merged tree), oci (an OCI layout directory) or oci-archive
        #[arg(long, default_value = "oci-archive", value_parser = ["rootfs", "oci", "oci-archive"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LbCmd {
    /// List the account's load balancers
    List,
    /// Show a load balancer: listeners, target groups, DNS name
    Describe { name: String },
    /// List the registered targets of a load balancer's target groups
    Targets { name: String },
    /// Show target health and in-flight requests
    Health { name: String },
    /// Show the last seconds of per-target and per-tenant metrics
    Metrics {
        name: String,
        /// How many of the most recent seconds to show
        #[arg(long, default_value_t = 10)]
        seconds: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// List the account's instances
    List,
    /// Show one instance
    Describe { id: String },
    /// Show an instance's console output
    Logs { id: String },
    /// Run a command inside an instance: `spindle instance exec i-… -- cat /etc/hostname`
    Exec {
        id: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 60)]
        timeout: u32,
    },
    /// Stop an instance (SIGTERM, then SIGKILL after 10 s)
    Stop { id: String },
    /// Start a stopped instance
    Start { id: String },
    /// Terminate an instance
    Terminate { id: String },
}

/// `--aws-listen` and `--ssh-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(std::net::SocketAddr),
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::At)
        .map_err(|_| format!("expected IP:PORT such as 127.0.0.1:4566, or `off`; got `{s}`"))
}
