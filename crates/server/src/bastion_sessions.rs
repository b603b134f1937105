//! `spindle ssh sessions` and `spindle ssh kill` (issue #18): the jump host's live sessions of
//! an account (`bastion:ListSessions`), and ending one (`bastion:KillSession`, audited like
//! every mutating call with the caller who killed it; the session's own `bastion:Connect`
//! record then says `session killed by ACCESS_KEY_ID`).

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use axum::extract::{Path, State};
use axum::Json;
use spindle_model::ssh::SshSession;
use spindle_model::AccountId;
use spindle_sshgate::SessionInfo;

type Res<T> = Result<T, ApiError>;

fn view(s: SessionInfo) -> SshSession {
    SshSession {
        id: s.id,
        key_id: s.identity.key_id,
        serial: s.identity.serial,
        user: s.identity.user,
        source: s.source,
        targets: s.targets,
        started: s.started,
        bytes_up: s.bytes_up,
        bytes_down: s.bytes_down,
    }
}

/// The live sessions whose credential belongs to `account`.
fn of_account(app: &App, account: &AccountId) -> Vec<SessionInfo> {
    let id = account.to_string();
    app.bastion
        .sessions()
        .into_iter()
        .filter(|s| s.identity.account == id)
        .collect()
}

/// `GET /v1/accounts/{account}/ssh/sessions`
pub async fn list(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<SshSession>>> {
    let a = app.scope(&call, &account, format!("account/{account}/ssh/sessions"))?;
    Ok(Json(
        of_account(&app, &a.id).into_iter().map(view).collect(),
    ))
}

/// `DELETE /v1/accounts/{account}/ssh/sessions/{session}`: another account's session answers
/// exactly like a missing one.
pub async fn kill(
    State(app): State<App>,
    Path((account, session)): Path<(String, String)>,
    call: Call,
) -> Res<Json<SshSession>> {
    let a = app.scope(
        &call,
        &account,
        format!("account/{account}/ssh/sessions/{session}"),
    )?;
    let missing = || {
        ApiError::not_found(format!("ssh session `{session}` not found"))
            .with_hint("`spindle ssh sessions` lists the live ones")
    };
    if !of_account(&app, &a.id).iter().any(|s| s.id == session) {
        return Err(missing());
    }
    let by = call.caller.key_id.to_string();
    let killed = app.bastion.kill(&session, &by).ok_or_else(missing)?;
    Ok(Json(view(killed)))
}
