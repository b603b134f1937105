//! Naming the final snapshots a stack operation took (issue #20): before a stateful resource
//! is deleted or replaced the daemon snapshots it, and the delete's event says so
//! (`final snapshot NAME taken before the delete`). `stack deploy`, `stack delete` and
//! `down` print those of their own operation: the events after the last one seen before it.

use spindle_client::Client;

/// The event reason's prefix the stack engine writes.
const PREFIX: &str = "final snapshot ";
const SUFFIX: &str = " taken before the delete";

/// The last event's sequence number before an operation (0 for a new stack).
pub fn mark(c: &Client, account: &str, stack: &str) -> u64 {
    c.stack_events(account, stack)
        .map(|events| events.iter().map(|e| e.seq).max().unwrap_or(0))
        .unwrap_or(0)
}

/// `(logical id, snapshot)` of the final snapshots taken after event `since`.
pub fn taken_since(c: &Client, account: &str, stack: &str, since: u64) -> Vec<(String, String)> {
    let Ok(events) = c.stack_events(account, stack) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, String, String)> = events
        .into_iter()
        .filter(|e| e.seq > since)
        .filter_map(|e| {
            let name = e
                .reason
                .as_deref()?
                .strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .to_string();
            Some((e.seq, e.logical_id, name))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, l, n)| (l, n)).collect()
}

/// Prints one line per final snapshot taken after event `since`.
pub fn print_since(c: &Client, account: &str, stack: &str, since: u64) {
    for (logical, snapshot) in taken_since(c, account, stack, since) {
        println!("Final snapshot {snapshot} keeps the data of {logical} (stack {stack}).");
    }
}
