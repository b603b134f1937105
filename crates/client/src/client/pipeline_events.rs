//! A pipeline run's live log (`/v1/accounts/{account}/pipeline-runs/{run}/logs`): the
//! daemon's server-sent events, read one at a time.

use std::io::{BufRead, BufReader, Read};

use super::{seg, Client, ClientError};
use serde::Deserialize;
use spindle_model::pipeline::RunStatus;

/// One event of a run's live log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A whole line of a step's log (with its `\n`, but for a step's unterminated last line);
    /// `id` resumes the stream after it.
    Line {
        job: String,
        step: u32,
        text: String,
        id: String,
    },
    /// A step's status changed.
    Step {
        job: String,
        step: u32,
        name: String,
        status: RunStatus,
        exit_code: Option<i32>,
    },
    /// The run ended; nothing follows.
    End { status: RunStatus },
}

#[derive(Deserialize)]
struct LineData {
    job: String,
    step: u32,
    text: String,
}

#[derive(Deserialize)]
struct StepData {
    job: String,
    step: u32,
    name: String,
    status: RunStatus,
    exit_code: Option<i32>,
}

#[derive(Deserialize)]
struct EndData {
    status: RunStatus,
}

/// The events of one open stream.
pub struct LogEvents {
    reader: BufReader<Box<dyn Read + Send + Sync>>,
    endpoint: String,
}

impl LogEvents {
    /// Reads an event stream from any reader (the daemon's response, or a test's bytes).
    pub fn from_reader(reader: Box<dyn Read + Send + Sync>, endpoint: &str) -> Self {
        Self {
            reader: BufReader::new(reader),
            endpoint: endpoint.to_owned(),
        }
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, data: &str) -> Result<T, ClientError> {
        serde_json::from_str(data).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            status: 200,
            detail: format!("event data `{data}`: {e}"),
        })
    }
}

impl Iterator for LogEvents {
    type Item = Result<LogEvent, ClientError>;

    /// The next event; `None` when the stream closed (after `End`, or cut: resume then with
    /// the last line's id).
    fn next(&mut self) -> Option<Self::Item> {
        let (mut kind, mut id, mut data) = (String::new(), String::new(), String::new());
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if kind.is_empty() && data.is_empty() {
                    continue;
                }
                let ev = match kind.as_str() {
                    "line" => self.decode::<LineData>(&data).map(|d| LogEvent::Line {
                        job: d.job,
                        step: d.step,
                        text: d.text,
                        id: std::mem::take(&mut id),
                    }),
                    "step" => self.decode::<StepData>(&data).map(|d| LogEvent::Step {
                        job: d.job,
                        step: d.step,
                        name: d.name,
                        status: d.status,
                        exit_code: d.exit_code,
                    }),
                    "end" => self
                        .decode::<EndData>(&data)
                        .map(|d| LogEvent::End { status: d.status }),
                    // An event this client doesn't know: skip it.
                    _ => {
                        (kind, id, data) = (String::new(), String::new(), String::new());
                        continue;
                    }
                };
                return Some(ev);
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => kind = value.to_owned(),
                "id" => id = value.to_owned(),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

impl Client {
    /// Opens run `run`'s live log (only `job`'s when given), after `last_id` when resuming.
    pub fn pipeline_log_events(
        &self,
        account: &str,
        run: i64,
        job: Option<&str>,
        last_id: Option<&str>,
    ) -> Result<LogEvents, ClientError> {
        let q = job.map(|j| format!("?job={}", seg(j))).unwrap_or_default();
        let path = format!("/v1/accounts/{}/pipeline-runs/{run}/logs{q}", seg(account));
        let mut req = self.request("GET", &path, b"", true)?;
        if let Some(id) = last_id {
            req = req.set("last-event-id", id);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                let mut bytes = Vec::new();
                let _ = r.into_reader().take(1 << 20).read_to_end(&mut bytes);
                let body = self.error_body(status, &bytes)?;
                return Err(ClientError::Api {
                    status,
                    body: body.error,
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(ClientError::Connect {
                    endpoint: self.endpoint().to_owned(),
                    detail: t.to_string(),
                })
            }
        };
        Ok(LogEvents::from_reader(resp.into_reader(), self.endpoint()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_from_the_stream_format() {
        let text = ": keep-alive\n\nevent: line\nid: a:0:4\ndata: {\"job\":\"a\",\"step\":0,\"text\":\"<b>\\n\"}\n\n\
                    event: other\ndata: {}\n\n\
                    event: step\ndata: {\"job\":\"a\",\"step\":0,\"name\":\"Run x\",\"status\":\"success\",\"exit_code\":0}\n\n\
                    event: end\ndata: {\"status\":\"success\"}\n\n";
        let ev: Vec<LogEvent> = LogEvents::from_reader(Box::new(std::io::Cursor::new(text)), "t")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            ev,
            [
                LogEvent::Line {
                    job: "a".into(),
                    step: 0,
                    text: "<b>\n".into(),
                    id: "a:0:4".into()
                },
                LogEvent::Step {
                    job: "a".into(),
                    step: 0,
                    name: "Run x".into(),
                    status: RunStatus::Success,
                    exit_code: Some(0)
                },
                LogEvent::End {
                    status: RunStatus::Success
                },
            ]
        );
    }
}
