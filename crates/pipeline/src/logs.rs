//! A step's log as it is written (issue #17 item 4): raw output bytes become whole lines in
//! bounded memory, `::add-mask::` values are masked, and the log stops growing at
//! [`crate::runner::LOG_LIMIT`] with a note. The daemon stores and streams exactly what
//! [`StepLog::push`] and [`StepLog::finish`] return, so the stored log is byte for byte what
//! every reader saw, and no reader ever sees half a line.
//!
//! Pure: the executor feeds it the bytes it reads from the step's pipe.

use crate::runner::LOG_LIMIT;

/// A line longer than this is cut here: what was read so far becomes a line of its own
/// (ending without a newline) so memory stays bounded whatever a step prints.
pub const MAX_LINE: usize = 64 * 1024;

/// What replaces a masked value (GitHub's mask).
pub const MASK: &str = "***";

/// One step's log being written.
#[derive(Debug, Default)]
pub struct StepLog {
    /// Bytes of the line not ended yet (at most [`MAX_LINE`]).
    partial: Vec<u8>,
    /// Values `::add-mask::` registered, longest first so a value containing another is
    /// masked whole.
    masks: Vec<String>,
    /// Bytes handed out so far.
    written: usize,
    /// The limit was reached: the note is out and everything after is dropped.
    cut: bool,
    /// Bytes dropped after the cut.
    dropped: usize,
}

impl StepLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Values to mask from the start (secrets the step sees); empty values are ignored.
    pub fn with_masks<I: IntoIterator<Item = String>>(masks: I) -> Self {
        let mut s = Self::new();
        for m in masks {
            s.add_mask(m);
        }
        s
    }

    /// The values masked so far (to carry into the job's next step).
    pub fn masks(&self) -> &[String] {
        &self.masks
    }

    fn add_mask(&mut self, value: String) {
        if value.is_empty() || self.masks.contains(&value) {
            return;
        }
        self.masks.push(value);
        self.masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
    }

    /// Takes output as read from the step; returns the text to store and stream now: zero
    /// or more whole lines, each ending in `\n` (or cut at [`MAX_LINE`]).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut out = String::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = MAX_LINE - self.partial.len();
            match rest.iter().take(room).position(|b| *b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..=i]);
                    rest = &rest[i + 1..];
                    self.emit(&mut out);
                }
                None if rest.len() >= room => {
                    self.partial.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                    self.emit(&mut out);
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        out
    }

    /// The step ended: what is left of its last line (which has no newline), and the cut note
    /// if the log was cut.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if !self.partial.is_empty() {
            self.emit(&mut out);
        }
        if self.cut && self.dropped > 0 {
            out.push_str(&format!(
                "[spindle: log cut at {LOG_LIMIT} bytes; {} more bytes not kept]\n",
                self.dropped
            ));
            self.dropped = 0;
        }
        out
    }

    /// Moves the partial line to `out`: masked, or consumed if it is a mask command.
    fn emit(&mut self, out: &mut String) {
        let raw = std::mem::take(&mut self.partial);
        let line = String::from_utf8_lossy(&raw);
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some(value) = body.strip_prefix("::add-mask::") {
            // The command itself is never shown (it holds the value).
            self.add_mask(value.to_string());
            return;
        }
        let mut text = line.into_owned();
        for m in &self.masks {
            if text.contains(m.as_str()) {
                text = text.replace(m.as_str(), MASK);
            }
        }
        if self.cut {
            self.dropped += text.len();
            return;
        }
        if self.written + text.len() > LOG_LIMIT {
            self.cut = true;
            self.dropped += text.len();
            return;
        }
        self.written += text.len();
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one; returns what each push handed out and the finish.
    fn feed(log: &mut StepLog, chunks: &[&[u8]]) -> (Vec<String>, String) {
        let each = chunks.iter().map(|c| log.push(c)).collect();
        (each, log.finish())
    }

    #[test]
    fn lines_come_out_whole_whatever_the_reads() {
        /// Reads as they come; what each push hands out; what finish hands out.
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a str], &'a str);
        let cases: &[Case<'_>] = &[
            (&[b"one\ntwo\n"], &["one\ntwo\n"], ""),
            (&[b"o", b"ne\ntw", b"o\n"], &["", "one\n", "two\n"], ""),
            (&[b"no newline"], &[""], "no newline"),
            (&[b"a\r\n", b"\n"], &["a\r\n", "\n"], ""),
        ];
        for (chunks, want, rest) in cases {
            let mut log = StepLog::new();
            let (got, fin) = feed(&mut log, chunks);
            assert_eq!(&got, want, "{chunks:?}");
            assert_eq!(&fin, rest, "{chunks:?}");
        }
    }

    #[test]
    fn masks_apply_to_later_lines_and_the_command_is_not_shown() {
        let mut log = StepLog::with_masks(["s3cret".to_string(), String::new()]);
        let out = log.push(b"pw s3cret\n::add-mask::tok-1\nuse tok-1 and tok-12\n");
        assert_eq!(out, "pw ***\nuse *** and ***2\n");
        // A longer value containing a shorter one is masked whole.
        let mut log = StepLog::new();
        let out = log.push(b"::add-mask::ab\n::add-mask::abcd\nabcd ab\n");
        assert_eq!(out, "*** ***\n");
    }

    #[test]
    fn a_long_line_is_cut_into_bounded_lines() {
        let mut log = StepLog::new();
        let big = vec![b'x'; MAX_LINE + 10];
        let out = log.push(&big);
        assert_eq!(out.len(), MAX_LINE);
        assert!(!out.contains('\n'));
        assert_eq!(log.partial.len(), 10);
        assert_eq!(log.finish(), "x".repeat(10));
    }

    #[test]
    fn the_log_stops_at_its_limit_with_a_note() {
        let mut log = StepLog::new();
        let line = format!("{}\n", "y".repeat(999));
        let mut total = String::new();
        for _ in 0..(LOG_LIMIT / 1000 + 5) {
            total.push_str(&log.push(line.as_bytes()));
        }
        assert!(total.len() <= LOG_LIMIT);
        assert_eq!(total.len() % 1000, 0, "only whole lines are kept");
        let fin = log.finish();
        assert!(
            fin.starts_with(&format!("[spindle: log cut at {LOG_LIMIT} bytes; ")),
            "{fin}"
        );
        // Whatever is cut, what was handed out plus the note is everything a reader sees.
        assert!(log.finish().is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let mut log = StepLog::new();
        assert_eq!(log.push(b"a\xffb\n"), "a\u{fffd}b\n");
    }
}
