//! The REST API's shape: the route table (checked against `docs/openapi.json` by a test), the
//! error type every handler returns, and the router.

use crate::app::App;
use crate::apt_handlers as aph;
use crate::asg_handlers as ah;
use crate::audit::RequestId;
use crate::devbox_handlers as dbh;
use crate::dns_handlers as dnsh;
use crate::git_handlers as gh;
use crate::handlers as h;
use crate::lb_handlers as lbh;
use crate::runtime_handlers as rh;
use crate::stack_handlers as sh;
use crate::stack_ops as so;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Extension, Router};
use spindle_model::api::{ErrorBody, ErrorDetail};
use spindle_model::Action;

/// The action a route performs, attached to its requests so the authorizer, the audit log and
/// the OpenAPI description all read it from one place.
#[derive(Debug, Clone, Copy)]
pub struct RouteAction(pub Action);

/// An API error: status, stable code, message and hint. Rendered as [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    hint: Option<String>,
    /// A refusal for the audit log, even where the answer looks like "not found".
    denied: bool,
}

/// Left on error responses for the audit layer.
#[derive(Debug, Clone)]
pub struct ErrorCode {
    pub code: String,
    pub denied: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: String) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message,
            hint: None,
            denied: false,
        }
    }
    pub fn not_found(message: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    pub fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }
    pub fn conflict(message: String) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }
    pub fn access_denied(message: String) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message).denied()
    }
    pub fn unauthenticated(code: &str, message: String) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message).denied()
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("request body is larger than {limit} bytes"),
        )
    }
    pub fn internal(message: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            message.to_owned(),
        )
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// Whether the error refuses the caller (audited as `denied`), whatever its code.
    pub fn is_denial(&self) -> bool {
        self.denied || self.code == "AccessDenied"
    }
    pub fn denied(mut self) -> Self {
        self.denied = true;
        self
    }
}

impl From<spindle_store::StoreError> for ApiError {
    fn from(e: spindle_store::StoreError) -> Self {
        use spindle_store::StoreError as S;
        match e {
            S::Conflict { .. } => Self::conflict(e.to_string()),
            S::NotFound { .. } => Self::not_found(e.to_string()),
            S::NotEmpty { .. } => Self::new(StatusCode::CONFLICT, "NotEmpty", e.to_string()),
            other => {
                let chain = error_chain(&other);
                tracing::error!(error = %chain, "store failure");
                Self::internal(&format!("internal error in the state store: {chain}"))
            }
        }
    }
}

/// An error with its causes, as one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Renders errors; the request id is filled in by [`add_request_id`].
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.clone(),
                message: self.message,
                hint: self.hint,
                request_id: String::new(),
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode {
            code: self.code,
            denied: self.denied,
        });
        resp
    }
}

/// Fills the request id into error bodies (the handler that built the error didn't know it).
async fn add_request_id(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let resp = next.run(req).await;
    if resp.extensions().get::<ErrorCode>().is_none() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let bytes = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(mut b) => {
            b.error.request_id = id;
            serde_json::to_vec(&b).map(Into::into).unwrap_or(bytes)
        }
        Err(_) => bytes,
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// One row of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    /// `None` for the unauthenticated operational routes.
    pub action: Option<Action>,
}

/// Collects routes and their table together, so the two can't disagree.
struct Api {
    router: Router<App>,
    table: Vec<RouteSpec>,
}

impl Api {
    fn route(
        mut self,
        method: Method,
        path: &'static str,
        action: Action,
        handler: MethodRouter<App>,
    ) -> Self {
        self.table.push(RouteSpec {
            method,
            path,
            action: Some(action),
        });
        self.router = self
            .router
            .route(path, handler.layer(Extension(RouteAction(action))));
        self
    }
}

fn filter(m: &Method) -> MethodFilter {
    match *m {
        Method::GET => MethodFilter::GET,
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        _ => unreachable!("the API uses GET, POST, PUT and DELETE only"),
    }
}

macro_rules! routes {
    ($api:expr, $($method:ident $path:literal $action:ident => $handler:path;)*) => {
        $api$(.route(Method::$method, $path, Action::$action, on(filter(&Method::$method), $handler)))*
    };
}

fn api_routes() -> Api {
    let api = Api {
        router: Router::new(),
        table: Vec::new(),
    };
    routes!(api,
        GET "/v1/whoami" WhoAmI => h::whoami;
        GET "/v1/accounts" ListAccounts => h::list_accounts;
        POST "/v1/accounts" CreateAccount => h::create_account;
        GET "/v1/accounts/{account}" DescribeAccount => h::describe_account;
        DELETE "/v1/accounts/{account}" DeleteAccount => h::delete_account;
        GET "/v1/accounts/{account}/keys" ListKeys => h::list_keys;
        POST "/v1/accounts/{account}/keys" CreateKey => h::create_key;
        DELETE "/v1/accounts/{account}/keys/{key}" RevokeKey => h::revoke_key;
        GET "/v1/accounts/{account}/roles" ListRoles => h::list_roles;
        POST "/v1/accounts/{account}/roles" CreateRole => h::create_role;
        GET "/v1/accounts/{account}/roles/{role}" DescribeRole => h::describe_role;
        DELETE "/v1/accounts/{account}/roles/{role}" DeleteRole => h::delete_role;
        POST "/v1/assume-role" AssumeRole => h::assume_role;
        GET "/v1/accounts/{account}/deny-rules" ListDenyRules => h::list_deny_rules;
        POST "/v1/accounts/{account}/deny-rules" AddDenyRule => h::add_deny_rule;
        DELETE "/v1/accounts/{account}/deny-rules/{id}" RemoveDenyRule => h::remove_deny_rule;
        GET "/v1/audit" ReadAudit => h::read_audit;
        GET "/v1/accounts/{account}/params" ListParams => h::list_params;
        GET "/v1/accounts/{account}/params/{name}" GetParam => h::get_param;
        PUT "/v1/accounts/{account}/params/{name}" PutParam => h::put_param;
        DELETE "/v1/accounts/{account}/params/{name}" DeleteParam => h::delete_param;
        GET "/v1/accounts/{account}/secrets" ListSecrets => crate::secrets::list_secrets;
        GET "/v1/accounts/{account}/secrets/{name}" DescribeSecret => crate::secrets::describe_secret;
        GET "/v1/accounts/{account}/secrets/{name}/value" GetSecretValue => crate::secrets::get_secret_value;
        PUT "/v1/accounts/{account}/secrets/{name}/value" PutSecretValue => crate::secrets::put_secret_value;
        POST "/v1/accounts/{account}/secrets/{name}/rotate" RotateSecret => crate::secrets::rotate_secret;
        GET "/v1/accounts/{account}/rds/instances" ListDbInstances => crate::rds_handlers::list_db_instances;
        GET "/v1/accounts/{account}/rds/snapshots" ListDbSnapshots => crate::rds_handlers::list_db_snapshots;
        POST "/v1/accounts/{account}/rds/snapshots" CreateDbSnapshot => crate::rds_handlers::create_db_snapshot;
        DELETE "/v1/accounts/{account}/rds/snapshots/{snapshot}" DeleteDbSnapshot => crate::rds_handlers::delete_db_snapshot;
        POST "/v1/accounts/{account}/templates/validate" ValidateTemplate => sh::validate_template;
        GET "/v1/accounts/{account}/stacks" ListStacks => sh::list_stacks;
        GET "/v1/accounts/{account}/stacks/{stack}" DescribeStack => sh::describe_stack;
        POST "/v1/accounts/{account}/stacks/{stack}" DeployStack => sh::deploy_stack;
        DELETE "/v1/accounts/{account}/stacks/{stack}" DeleteStack => sh::delete_stack;
        GET "/v1/accounts/{account}/stacks/{stack}/events" DescribeStack => sh::stack_events;
        GET "/v1/accounts/{account}/stacks/{stack}/drift" DetectStackDrift => sh::stack_drift;
        GET "/v1/accounts/{account}/stacks/{stack}/template" DescribeStack => so::stack_template;
        POST "/v1/accounts/{account}/stacks/{stack}/continue-rollback" ContinueRollback => sh::continue_rollback;
        POST "/v1/accounts/{account}/stacks/{stack}/termination-protection" UpdateTerminationProtection => so::update_termination_protection;
        PUT "/v1/accounts/{account}/stacks/{stack}/policy" SetStackPolicy => so::set_stack_policy;
        GET "/v1/accounts/{account}/stacks/{stack}/change-sets" ListChangeSets => so::list_change_sets;
        POST "/v1/accounts/{account}/stacks/{stack}/change-sets/{change_set}" CreateChangeSet => so::create_change_set;
        GET "/v1/accounts/{account}/stacks/{stack}/change-sets/{change_set}" DescribeChangeSet => so::describe_change_set;
        DELETE "/v1/accounts/{account}/stacks/{stack}/change-sets/{change_set}" DeleteChangeSet => so::delete_change_set;
        POST "/v1/accounts/{account}/stacks/{stack}/change-sets/{change_set}/execute" ExecuteChangeSet => so::execute_change_set;
        GET "/v1/accounts/{account}/exports" ListExports => so::list_exports;
        POST "/v1/accounts/{account}/images" ImportImage => rh::import_image;
        GET "/v1/accounts/{account}/images" ListImages => rh::list_images;
        GET "/v1/accounts/{account}/images/{id}" DescribeImage => rh::describe_image;
        POST "/v1/accounts/{account}/images/{id}/tags" TagImage => rh::tag_image;
        DELETE "/v1/accounts/{account}/images/{id}" RemoveImage => rh::remove_image;
        POST "/v1/accounts/{account}/images/{id}/export" ExportImage => rh::export_image;
        GET "/v1/accounts/{account}/instances" ListInstances => rh::list_instances;
        GET "/v1/accounts/{account}/instances/{id}" DescribeInstance => rh::describe_instance;
        GET "/v1/accounts/{account}/instances/{id}/console" InstanceConsole => rh::instance_console;
        POST "/v1/accounts/{account}/instances/{id}/exec" ExecInstance => rh::exec_instance;
        POST "/v1/accounts/{account}/instances/{id}/stop" StopInstance => rh::stop_instance;
        POST "/v1/accounts/{account}/instances/{id}/start" StartInstance => rh::start_instance;
        DELETE "/v1/accounts/{account}/instances/{id}" TerminateInstance => rh::terminate_instance;
        GET "/v1/accounts/{account}/devboxes" ListDevboxes => dbh::list;
        GET "/v1/accounts/{account}/devboxes/{name}" DescribeDevbox => dbh::describe;
        PUT "/v1/accounts/{account}/devboxes/{name}" PutDevbox => dbh::put;
        DELETE "/v1/accounts/{account}/devboxes/{name}" DeleteDevbox => dbh::delete;
        POST "/v1/accounts/{account}/devboxes/{name}/exec" ExecDevbox => dbh::exec;
        POST "/v1/accounts/{account}/devboxes/{name}/attach" AttachDevbox => dbh::attach;
        GET "/v1/accounts/{account}/load-balancers" ListLoadBalancers => lbh::list;
        GET "/v1/accounts/{account}/load-balancers/{name}" DescribeLoadBalancer => lbh::describe;
        GET "/v1/accounts/{account}/load-balancers/{name}/targets" DescribeTargetHealth => lbh::targets;
        GET "/v1/accounts/{account}/load-balancers/{name}/metrics" ReadLoadBalancerMetrics => lbh::metrics;
        GET "/v1/accounts/{account}/dns/zones" ListHostedZones => dnsh::zones;
        GET "/v1/accounts/{account}/dns/zones/{zone}/records" ListRecordSets => dnsh::records;
        GET "/v1/accounts/{account}/dns/test" TestDnsAnswer => dnsh::test;
        GET "/v1/accounts/{account}/autoscaling-groups" ListAutoScalingGroups => ah::list_groups;
        GET "/v1/accounts/{account}/autoscaling-groups/{name}" DescribeAutoScalingGroup => ah::describe_group;
        GET "/v1/accounts/{account}/autoscaling-groups/{name}/activities" DescribeScalingActivities => ah::group_activities;
        POST "/v1/accounts/{account}/autoscaling-groups/{name}/desired-capacity" SetDesiredCapacity => ah::set_desired;
        POST "/v1/accounts/{account}/autoscaling-groups/{name}/instance-refresh" StartInstanceRefresh => ah::start_refresh;
        POST "/v1/accounts/{account}/autoscaling-groups/{name}/lifecycle-actions" CompleteLifecycleAction => ah::complete_lifecycle_action;
        GET "/v1/doctor" ReadDoctor => rh::read_doctor;
        POST "/v1/doctor" FixDoctor => rh::fix_doctor;
        POST "/v1/accounts/{account}/packages" UploadPackage => aph::upload_package;
        POST "/v1/accounts/{account}/packages/batch" UploadPackage => aph::upload_packages;
        GET "/v1/accounts/{account}/repos" ListRepos => aph::list_repos;
        POST "/v1/accounts/{account}/repos" CreateRepo => aph::create_repo;
        GET "/v1/accounts/{account}/repos/{repo}" DescribeRepo => aph::describe_repo;
        DELETE "/v1/accounts/{account}/repos/{repo}" DropRepo => aph::drop_repo;
        POST "/v1/accounts/{account}/repos/{repo}/packages" AddToRepo => aph::add_to_repo;
        GET "/v1/accounts/{account}/repos/{repo}/packages" SearchRepo => aph::search_repo;
        POST "/v1/accounts/{account}/repos/{repo}/remove" RemoveFromRepo => aph::remove_from_repo;
        POST "/v1/accounts/{account}/repos/{repo}/copy" CopyPackages => aph::copy_packages;
        POST "/v1/accounts/{account}/repos/{repo}/move" MovePackages => aph::move_packages;
        GET "/v1/accounts/{account}/snapshots" ListSnapshots => aph::list_snapshots;
        POST "/v1/accounts/{account}/snapshots" CreateSnapshot => aph::create_snapshot;
        GET "/v1/accounts/{account}/snapshots/{snapshot}" DescribeSnapshot => aph::describe_snapshot;
        DELETE "/v1/accounts/{account}/snapshots/{snapshot}" DropSnapshot => aph::drop_snapshot;
        GET "/v1/accounts/{account}/snapshots/{snapshot}/diff/{other}" DiffSnapshots => aph::diff_snapshots;
        GET "/v1/accounts/{account}/publications" ListPublications => aph::list_publications;
        POST "/v1/accounts/{account}/publications" CreatePublication => aph::create_publication;
        POST "/v1/accounts/{account}/publications/update" UpdatePublication => aph::update_publication;
        POST "/v1/accounts/{account}/publications/switch" SwitchPublication => aph::switch_publication;
        POST "/v1/accounts/{account}/publications/drop" DropPublication => aph::drop_publication;
        GET "/v1/accounts/{account}/signing-keys" ListSigningKeys => aph::list_signing_keys;
        POST "/v1/accounts/{account}/signing-keys" CreateSigningKey => aph::create_signing_key;
        GET "/v1/accounts/{account}/signing-keys/{key}" ExportSigningKey => aph::export_signing_key;
        DELETE "/v1/accounts/{account}/signing-keys/{key}" DeleteSigningKey => aph::delete_signing_key;
        POST "/v1/db/cleanup" CleanupDb => aph::cleanup_db;
        GET "/v1/accounts/{account}/mirrors" ListMirrors => aph::list_mirrors;
        POST "/v1/accounts/{account}/mirrors" CreateMirror => aph::create_mirror;
        GET "/v1/accounts/{account}/mirrors/{mirror}" DescribeMirror => aph::describe_mirror;
        DELETE "/v1/accounts/{account}/mirrors/{mirror}" DropMirror => aph::drop_mirror;
        POST "/v1/accounts/{account}/mirrors/{mirror}/update" UpdateMirror => aph::update_mirror;
        GET "/v1/accounts/{account}/git-repos" ListGitRepositories => gh::list_repos;
        POST "/v1/accounts/{account}/git-repos" CreateGitRepository => gh::create_repo;
        DELETE "/v1/accounts/{account}/git-repos/{repo}" DeleteGitRepository => gh::drop_repo;
        GET "/v1/accounts/{account}/pipeline-runs" ListPipelineRuns => gh::list_runs;
        GET "/v1/accounts/{account}/pipeline-runs/{run}" DescribePipelineRun => gh::describe_run;
        POST "/v1/accounts/{account}/git-repos/{repo}/dispatches" DispatchPipelineRun => crate::pipeline_handlers::dispatch;
        POST "/v1/accounts/{account}/pipeline-runs/{run}/cancel" CancelPipelineRun => crate::pipeline_handlers::cancel;
        GET "/v1/accounts/{account}/pipeline-runs/{run}/logs" DescribePipelineRun => crate::pipeline_logs::logs;
        POST "/v1/accounts/{account}/pipeline-runs/{run}/rerun" RerunPipelineRun => crate::pipeline_rerun::rerun;
        POST "/v1/accounts/{account}/ui-sessions" CreateUiSession => crate::ui::create_session;
        GET "/v1/accounts/{account}/ssh" DescribeBastion => crate::bastion::describe;
        POST "/v1/accounts/{account}/ssh/certificates" SignSshCertificate => crate::bastion::sign_certificate;
        GET "/v1/accounts/{account}/ssh/sessions" ListSshSessions => crate::bastion_sessions::list;
        DELETE "/v1/accounts/{account}/ssh/sessions/{session}" KillSshSession => crate::bastion_sessions::kill;
        GET "/v1/accounts/{account}/ssh/keys" ListSshKeys => crate::bastion_keys::list;
        POST "/v1/accounts/{account}/ssh/keys" AddSshKey => crate::bastion_keys::add;
        DELETE "/v1/accounts/{account}/ssh/keys/{key}" RemoveSshKey => crate::bastion_keys::remove;
        PUT "/v1/accounts/{account}/ssh/settings" UpdateBastionSettings => crate::bastion_keys::settings;
    )
}

/// Published apt trees, for apt itself (no API signature; private ones want basic auth).
const APT_FILES: &str = "/apt/{account}/{*path}";

/// Every route the daemon serves, with its action: what `docs/openapi.json` must describe.
pub fn route_table() -> Vec<RouteSpec> {
    let mut t = vec![
        RouteSpec {
            method: Method::GET,
            path: "/healthz",
            action: None,
        },
        RouteSpec {
            method: Method::GET,
            path: "/metrics",
            action: None,
        },
        RouteSpec {
            method: Method::GET,
            path: APT_FILES,
            action: None,
        },
        RouteSpec {
            method: Method::GET,
            path: crate::git_http::GIT_ROUTE,
            action: None,
        },
        RouteSpec {
            method: Method::POST,
            path: crate::git_http::GIT_ROUTE,
            action: None,
        },
    ];
    t.extend(api_routes().table);
    t
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such API route".into())
        .with_hint("see docs/openapi.json for the routes")
}

pub fn router(app: App) -> Router {
    let api = api_routes();
    api.router
        .route("/healthz", axum::routing::get(h::healthz))
        .route("/metrics", axum::routing::get(h::metrics))
        .route(APT_FILES, axum::routing::get(aph::serve_published))
        .route(
            crate::git_http::GIT_ROUTE,
            axum::routing::get(crate::git_http::serve).post(crate::git_http::serve),
        )
        .merge(crate::ui::router())
        .fallback(fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "method not allowed on this route".into(),
            )
        })
        .layer(axum::middleware::from_fn(add_request_id))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::audit::layer,
        ))
        .with_state(app)
}
