//! The audit record of a mutating call commits with the mutation.
//!
//! The daemon's audit layer runs each mutating request inside an [`AuditScope`]
//! ([`AuditScope::run`]). The first write transaction the request commits on its own task
//! also inserts the call's *pending* record (`audit_pending`: who, what, which target), in the
//! same transaction, so a committed change always has a record. When the response is known
//! the layer writes the final record and removes the pending one, again in one transaction
//! ([`Store::append_audit_final`]). If the daemon dies in between, the next start turns every
//! pending record into a final one ([`Store::finish_pending_audit`]): result `ok` (the change
//! committed) with status 0, as no response was sent.
//!
//! The scope follows the request's future from poll to poll (a thread-local set while it is
//! polled), so writes on other tasks or threads (a stack operation the request started in
//! the background) are not in it; those calls keep the record written after the response.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rusqlite::Transaction;

use crate::audit::{insert_audit, unix_ms};
use crate::{AuditRecord, Store, StoreError};

type Draft = dyn Fn() -> AuditRecord + Send + Sync;

/// One request's audit scope: how to describe the call as it stands, and whether its pending
/// record was written.
#[derive(Clone)]
pub struct AuditScope {
    draft: Arc<Draft>,
    written: Arc<AtomicBool>,
}

impl std::fmt::Debug for AuditScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditScope")
            .field("written", &self.written.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<AuditScope>> = const { RefCell::new(None) };
}

impl AuditScope {
    /// `draft` describes the call as known at the moment of the write (its `result` and
    /// `status` are ignored for the pending record).
    pub fn new(draft: impl Fn() -> AuditRecord + Send + Sync + 'static) -> Self {
        AuditScope {
            draft: Arc::new(draft),
            written: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a write in this scope committed (and with it the pending record).
    pub fn wrote(&self) -> bool {
        self.written.load(Ordering::SeqCst)
    }

    /// Runs `fut` with this scope current whenever it is polled.
    pub fn run<F: Future>(&self, fut: F) -> Scoped<F> {
        Scoped {
            scope: self.clone(),
            fut: Box::pin(fut),
        }
    }

    fn current() -> Option<AuditScope> {
        CURRENT.with(|c| c.borrow().clone())
    }
}

/// A future polled inside an [`AuditScope`].
pub struct Scoped<F> {
    scope: AuditScope,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let prev = CURRENT.with(|c| c.replace(Some(self.scope.clone())));
        // Put the previous scope back even if the inner future panics.
        struct Restore(Option<AuditScope>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = prev);
            }
        }
        let _restore = Restore(prev);
        self.fut.as_mut().poll(cx)
    }
}

/// Called inside every write transaction, before it commits: the first write of a scope
/// inserts its pending record. Returns the scope to mark once the commit succeeded.
pub(crate) fn pending_in(tx: &Transaction<'_>) -> Result<Option<AuditScope>, StoreError> {
    let Some(scope) = AuditScope::current() else {
        return Ok(None);
    };
    if scope.wrote() {
        return Ok(None);
    }
    let rec = (scope.draft)();
    tx.prepare_cached(
        "INSERT INTO audit_pending(request_id, time_ms, access_key_id, principal, account_id,
                                   target_account_id, action, target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(request_id) DO NOTHING",
    )?
    .execute(rusqlite::params![
        rec.request_id,
        unix_ms(rec.time),
        rec.access_key_id,
        rec.principal,
        rec.account_id.as_ref().map(|a| a.as_str()),
        rec.target_account_id.as_ref().map(|a| a.as_str()),
        rec.action,
        rec.target,
    ])?;
    Ok(Some(scope))
}

pub(crate) fn committed(scope: Option<AuditScope>) {
    if let Some(s) = scope {
        s.written.store(true, Ordering::SeqCst);
    }
}

impl Store {
    /// Writes the final record of a call and drops its pending record, in one transaction.
    pub fn append_audit_final(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        self.write_unscoped(|tx| {
            insert_audit(tx, rec)?;
            tx.prepare_cached("DELETE FROM audit_pending WHERE request_id = ?1")?
                .execute([&rec.request_id])?;
            Ok(())
        })
    }

    /// Turns the pending records a stopped daemon left into final ones (result `ok`, status
    /// 0: the change committed, no response was sent). Returns how many.
    pub fn finish_pending_audit(&self) -> Result<usize, StoreError> {
        self.write_unscoped(|tx| {
            let n = tx.execute(
                "INSERT INTO audit(time_ms, request_id, access_key_id, principal, account_id,
                                   target_account_id, action, target, result, status, error_code)
                 SELECT time_ms, request_id, access_key_id, principal, account_id,
                        target_account_id, action, target, 'ok', 0, NULL
                 FROM audit_pending ORDER BY time_ms, request_id",
                [],
            )?;
            tx.execute("DELETE FROM audit_pending", [])?;
            Ok(n)
        })
    }

    /// How many calls have a pending record (tests).
    #[doc(hidden)]
    pub fn pending_audit_count(&self) -> Result<u64, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM audit_pending", [], |r| r.get(0))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{now, open};
    use crate::AuditFilter;

    fn rec(id: &str) -> AuditRecord {
        AuditRecord {
            time: now(),
            request_id: id.into(),
            access_key_id: None,
            principal: Some("admin".into()),
            account_id: None,
            target_account_id: None,
            action: "POST /v1/accounts".into(),
            target: "/v1/accounts".into(),
            result: "ok",
            status: 201,
            error_code: None,
        }
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        // The futures here never wait, so one poll finishes them.
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut fut = Box::pin(fut);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the test future waited"),
        }
    }

    fn audit_rows(s: &Store) -> Vec<(String, u16, String)> {
        s.query_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| (e.request_id, e.status, e.result))
        .collect()
    }

    #[test]
    fn a_scoped_write_commits_its_pending_record_and_the_final_one_replaces_it() {
        let (_d, s) = open();
        let scope = AuditScope::new(|| rec("req-1"));
        block_on(scope.run(async {
            crate::test_util::dev_and_prod(&s);
        }));
        assert!(scope.wrote());
        // Two writes in the scope, one pending record.
        assert_eq!(s.pending_audit_count().unwrap(), 1);
        s.append_audit_final(&rec("req-1")).unwrap();
        assert_eq!(s.pending_audit_count().unwrap(), 0);
        assert_eq!(audit_rows(&s), vec![("req-1".into(), 201, "ok".into())]);
        // Outside any scope a write leaves no pending record.
        s.set_meta("k", "v").unwrap();
        assert_eq!(s.pending_audit_count().unwrap(), 0);
    }

    #[test]
    fn a_failed_write_leaves_no_pending_record_and_recovery_finishes_the_rest() {
        let (_d, s) = open();
        let failing = AuditScope::new(|| rec("req-failed"));
        let r = block_on(failing.run(async {
            s.append_journal(
                &spindle_model::AccountId::parse("123456789012").unwrap(),
                "x",
                1,
                "{}",
            )
        }));
        assert!(r.is_err(), "the journal refuses an unknown account");
        assert!(!failing.wrote());
        assert_eq!(s.pending_audit_count().unwrap(), 0);
        let killed = AuditScope::new(|| rec("req-killed"));
        block_on(killed.run(async { s.set_meta("k", "v").unwrap() }));
        // The daemon dies before the response: the next start finishes the record.
        assert_eq!(s.finish_pending_audit().unwrap(), 1);
        assert_eq!(s.pending_audit_count().unwrap(), 0);
        assert_eq!(audit_rows(&s), vec![("req-killed".into(), 0, "ok".into())]);
    }
}
