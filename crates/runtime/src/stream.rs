//! Running a command with its output handed over while it runs (a pipeline step's live log):
//! standard output and standard error share one pipe, so the caller reads them in the order
//! they were written, in chunks as the kernel delivers them. Memory stays bounded: at most
//! [`QUEUE`] chunks of [`CHUNK`] bytes wait between the reading thread and the caller.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::kernel::{Kernel, KernelError};

/// Bytes read from the pipe at once.
const CHUNK: usize = 8192;
/// Chunks read but not yet handed to the caller; the reader waits when this many are queued
/// (and so does the command, once the pipe's buffer is full).
const QUEUE: usize = 16;

enum Msg {
    Chunk(Vec<u8>),
    Done(std::io::Result<ExitStatus>),
}

/// Spawns `cmd` (prepared by the kernel's `enter`, still unspawned) with standard input
/// closed and its output joined on one pipe, hands each chunk of output to `sink` on this
/// thread, and returns how it ended. After `timeout` it is killed and an error returned.
pub(crate) fn stream_within(
    kernel: &dyn Kernel,
    mut cmd: Command,
    program: &str,
    timeout: Duration,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<ExitStatus, KernelError> {
    let (mut reader, writer) =
        std::io::pipe().map_err(|e| KernelError::io("create an output pipe", e))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| KernelError::io("duplicate an output pipe", e))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    let mut child = cmd
        .spawn()
        .map_err(|e| KernelError::io(format!("spawn {program} in instance"), e))?;
    // The command holds the pipe's write ends: drop them so the read ends when the child does.
    drop(cmd);
    let child_pid = child.id();
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(Msg::Chunk(buf[..n].to_vec())).is_err() {
                        // The caller gave up (timed out); the child is being killed.
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(Msg::Done(child.wait()));
    });
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Chunk(c)) => sink(&c),
            Ok(Msg::Done(r)) => {
                return r.map_err(|e| KernelError::io(format!("wait for {program}"), e))
            }
            Err(_) => {
                let _ = kernel.signal(child_pid, libc::SIGKILL);
                return Err(KernelError::Command {
                    cmd: format!("exec {program}"),
                    stderr: format!("timed out after {timeout:?}"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::RealKernel;

    #[test]
    fn output_arrives_while_the_command_runs_in_write_order() {
        // The command waits for a file that only the sink creates, on seeing its first line:
        // unless output is handed over while the command runs, it never ends (and times out).
        let d = tempfile::tempdir().unwrap();
        let flag = d.path().join("seen");
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            "echo one; echo err >&2; while [ ! -e \"$1\" ]; do sleep 0.02; done; echo two; exit 3",
            "sh",
        ])
        .arg(&flag);
        let mut seen: Vec<u8> = Vec::new();
        let status = stream_within(&RealKernel, cmd, "sh", Duration::from_secs(60), &mut |c| {
            seen.extend_from_slice(c);
            if seen.starts_with(b"one\n") {
                std::fs::write(&flag, b"").unwrap();
            }
        })
        .unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(seen, b"one\nerr\ntwo\n");
    }

    #[test]
    fn a_command_past_its_time_is_killed() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let mut got = Vec::new();
        let e = stream_within(
            &RealKernel,
            cmd,
            "sh",
            Duration::from_millis(300),
            &mut |c| got.extend_from_slice(c),
        )
        .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert_eq!(got, b"started\n");
    }
}
