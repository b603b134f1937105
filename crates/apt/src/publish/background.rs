//! A publisher shared by the callers of one account, which finishes the costly part of a
//! publish (`Packages.xz`, `Contents`) on a background thread after the `Release` swap.
//!
//! A caller that takes the lock asks a running completion to stop first (it stops between
//! chunks, keeping what it compressed), so a mutation or a republish never waits for a
//! whole first-publish completion; the completion then takes the lock again and resumes
//! from the cache, unless a newer publish of the same publication made it moot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::write::{Completion, Pending, Publisher};
use super::PublishError;

/// See the module docs.
#[derive(Debug)]
pub struct SharedPublisher {
    publisher: Mutex<Publisher>,
    /// Bumped by every [`SharedPublisher::lock`]; a completion stops when it changes.
    turn: AtomicU64,
}

impl SharedPublisher {
    pub fn new(publisher: Publisher) -> SharedPublisher {
        SharedPublisher {
            publisher: Mutex::new(publisher),
            turn: AtomicU64::new(0),
        }
    }

    /// The publisher, exclusively. A background completion holding it stops at its next
    /// chunk and resumes after this guard is dropped.
    pub fn lock(&self) -> MutexGuard<'_, Publisher> {
        self.turn.fetch_add(1, Ordering::SeqCst);
        self.publisher.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Completes `pending` on a new thread (see [`Publisher::complete`]), retrying after
    /// each interruption until it is done or superseded. `done` gets the outcome (an error
    /// leaves the first swap's tree in place, which apt reads as it is).
    pub fn complete_later(
        self: &Arc<Self>,
        pending: Pending,
        done: impl FnOnce(Result<Completion, PublishError>) + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let shared = Arc::clone(self);
        std::thread::Builder::new()
            .name("apt-complete".into())
            .spawn(move || done(shared.complete_now(&pending)))
    }

    fn complete_now(&self, pending: &Pending) -> Result<Completion, PublishError> {
        loop {
            let mut publisher = self.publisher.lock().unwrap_or_else(|p| p.into_inner());
            let turn = self.turn.load(Ordering::SeqCst);
            let cancel = || self.turn.load(Ordering::SeqCst) != turn;
            match publisher.complete(pending, &cancel)? {
                Completion::Cancelled => {
                    drop(publisher);
                    // Let the caller that interrupted us take the lock first.
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return Ok(other),
            }
        }
    }
}
