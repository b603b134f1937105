//! A recording fake provider for tests and benchmarks (STYLE habit 9): a world of fake
//! resources, a log of calls with logical start/end times, and faults on demand: fail
//! call N, or "crash" at call N (before or after its effect), which stops the executor
//! like a killed process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use spindle_template::Value;
use tokio::sync::watch;

use crate::provider::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, UpdateRequest,
};

/// Where a crash happens relative to the call's effect on the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Before the provider changed anything.
    Before,
    /// After the provider changed the world, before the engine heard back.
    After,
}

/// A resource in the fake world.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeResource {
    pub type_name: String,
    pub stack: String,
    pub logical_id: String,
    pub token: String,
    pub properties: BTreeMap<String, Value>,
}

/// One call (create, update, delete; reads are not counted), numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub n: usize,
    pub op: &'static str,
    pub stack: String,
    pub logical_id: String,
    /// Logical clock ticks at start and end (`None`: failed or never finished).
    pub start: u64,
    pub end: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    calls: usize,
    clock: u64,
    next_id: u64,
    world: BTreeMap<String, FakeResource>,
    log: Vec<CallRecord>,
    fail_at: Option<usize>,
    crash_at: Option<(usize, CrashPoint)>,
}

/// The fake provider. Register it for any number of types.
#[derive(Debug)]
pub struct FakeProvider {
    state: Mutex<State>,
    crashed: watch::Sender<bool>,
}

impl Default for FakeProvider {
    fn default() -> Self {
        FakeProvider {
            state: Mutex::new(State::default()),
            crashed: watch::channel(false).0,
        }
    }
}

enum Fault {
    None,
    Fail(usize),
    Crash(CrashPoint),
}

impl FakeProvider {
    pub fn new() -> Self {
        Self::default()
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the `n`th call from now (1-based), once.
    pub fn fail_at(&self, n: usize) {
        let mut s = self.st();
        s.fail_at = Some(s.calls + n);
    }

    /// Crashes at the `n`th call from now (1-based).
    pub fn crash_at(&self, n: usize, point: CrashPoint) {
        let mut s = self.st();
        s.crash_at = Some((s.calls + n, point));
    }

    /// Clears faults and the crashed flag (a restart).
    pub fn clear_faults(&self) {
        let mut s = self.st();
        s.fail_at = None;
        s.crash_at = None;
        drop(s);
        self.crashed.send_replace(false);
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.st().calls
    }

    pub fn log(&self) -> Vec<CallRecord> {
        self.st().log.clone()
    }

    /// The world: physical id → resource.
    pub fn world(&self) -> BTreeMap<String, FakeResource> {
        self.st().world.clone()
    }

    /// Resolves when a crash fault fires; race it against the engine's future.
    pub async fn crashed(&self) {
        let mut rx = self.crashed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Starts a call: numbers it, logs it and says which fault applies.
    fn begin(&self, op: &'static str, stack: &str, logical_id: &str) -> (usize, Fault) {
        let mut s = self.st();
        s.calls += 1;
        s.clock += 1;
        let n = s.calls;
        let start = s.clock;
        s.log.push(CallRecord {
            n,
            op,
            stack: stack.to_string(),
            logical_id: logical_id.to_string(),
            start,
            end: None,
        });
        let fault = if s.fail_at == Some(n) {
            Fault::Fail(n)
        } else if let Some((c, p)) = s.crash_at.filter(|(c, _)| *c == n) {
            let _ = c;
            Fault::Crash(p)
        } else {
            Fault::None
        };
        (n, fault)
    }

    fn end(&self, n: usize) {
        let mut s = self.st();
        s.clock += 1;
        let t = s.clock;
        if let Some(r) = s.log.iter_mut().find(|r| r.n == n) {
            r.end = Some(t);
        }
    }

    async fn crash(&self) -> ! {
        self.crashed.send_replace(true);
        std::future::pending::<()>().await;
        unreachable!("a pending future never resolves")
    }

    /// Runs a call with its faults: `effect` changes the world.
    async fn run<T>(
        &self,
        op: &'static str,
        stack: &str,
        logical_id: &str,
        fail_prop: bool,
        delay: Option<std::time::Duration>,
        effect: impl FnOnce(&mut State) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let (n, fault) = self.begin(op, stack, logical_id);
        // Let other calls start, so independent resources overlap.
        tokio::task::yield_now().await;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        match fault {
            Fault::Fail(n) => {
                return Err(ProviderError::Failed(format!(
                    "injected failure at call {n}"
                )))
            }
            Fault::Crash(CrashPoint::Before) => self.crash().await,
            _ => {}
        }
        if fail_prop {
            return Err(ProviderError::Failed(format!(
                "{logical_id} was told to fail"
            )));
        }
        let r = effect(&mut self.st());
        if let Fault::Crash(CrashPoint::After) = fault {
            self.crash().await;
        }
        tokio::task::yield_now().await;
        self.end(n);
        r
    }
}

/// Attributes: `Arn`, and every property echoed (so `Fn::GetAtt X.Prop` works for any
/// type the fake stands in for).
fn attributes(physical_id: &str, p: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut a = p.clone();
    a.insert(
        "Arn".to_string(),
        Value::str(format!("arn:spindle:fake:::{physical_id}")),
    );
    a
}

/// `DelayMs: N` makes every call for the resource take N milliseconds.
fn delay(p: &BTreeMap<String, Value>) -> Option<std::time::Duration> {
    p.get("DelayMs")
        .and_then(Value::scalar_string)
        .and_then(|s| s.parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
}

/// `FailOn: "create,update,delete"` makes those calls for the resource fail.
fn told_to_fail(p: &BTreeMap<String, Value>, op: &str) -> bool {
    p.get("FailOn")
        .and_then(Value::as_str)
        .is_some_and(|s| s.split(',').any(|x| x.trim() == op))
}

impl Provider for FakeProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let props = req.properties;
            let fail = told_to_fail(&props, "create");
            self.run(
                "create",
                cx.stack_name,
                cx.logical_id,
                fail,
                delay(&props),
                |s| {
                    if let Some((id, r)) = s.world.iter().find(|(_, r)| r.token == cx.token) {
                        return Ok(ProviderOutput {
                            physical_id: id.clone(),
                            attributes: attributes(id, &r.properties),
                        });
                    }
                    s.next_id += 1;
                    let id = format!("fake-{}", s.next_id);
                    s.world.insert(
                        id.clone(),
                        FakeResource {
                            type_name: cx.type_name.to_string(),
                            stack: cx.stack_name.to_string(),
                            logical_id: cx.logical_id.to_string(),
                            token: cx.token.to_string(),
                            properties: props.clone(),
                        },
                    );
                    Ok(ProviderOutput {
                        attributes: attributes(&id, &props),
                        physical_id: id,
                    })
                },
            )
            .await
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let fail = told_to_fail(&req.properties, "update");
            let id = req.physical_id;
            let props = req.properties;
            self.run(
                "update",
                cx.stack_name,
                cx.logical_id,
                fail,
                delay(&props),
                |s| {
                    let r = s
                        .world
                        .get_mut(&id)
                        .ok_or_else(|| ProviderError::NotFound(id.clone()))?;
                    r.properties = props.clone();
                    Ok(ProviderOutput {
                        attributes: attributes(&id, &props),
                        physical_id: id.clone(),
                    })
                },
            )
            .await
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let fail = told_to_fail(&req.properties, "delete");
            let id = req.physical_id;
            let d = delay(&req.properties);
            self.run("delete", cx.stack_name, cx.logical_id, fail, d, |s| {
                s.world.remove(&id);
                Ok(())
            })
            .await
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let s = self.st();
            let found = match &req.physical_id {
                Some(id) => s.world.get_key_value(id),
                None => s.world.iter().find(|(_, r)| r.token == req.cx.token),
            };
            Ok(found.map(|(id, r)| ReadOutput {
                physical_id: id.clone(),
                properties: r.properties.clone(),
                attributes: attributes(id, &r.properties),
            }))
        })
    }
}
