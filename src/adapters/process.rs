//! Running external tools (podman, buildah, haproxy, prometheus) with a
//! bound on every wait, and the helpers the local stack uses to find free
//! loopback ports and wait for a listener. A tool that hangs becomes an
//! error naming the command, never a stuck release.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion within `timeout`; a non-zero exit, a spawn
/// failure or the timeout is an `Err` naming the command and its stderr.
/// `input`, when given, is written to stdin.
pub fn run(cmd: &mut Command, timeout: Duration, input: Option<&[u8]>) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(data)
            .map_err(|e| format!("{shown}: writing stdin: {e}"))?;
    }
    // Drain both pipes on threads so a chatty tool cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} did not finish within {timeout:?}; killed"));
            }
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{shown} failed ({status}): {}", stderr.trim()));
    }
    Ok(Output { stdout, stderr })
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Polls `ready` every 50 ms until it holds or `timeout` passes; the error
/// says what was awaited.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not ready within {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_tool_is_killed_and_named() {
        let err = run(
            Command::new("sleep").arg("5"),
            Duration::from_millis(200),
            None,
        )
        .unwrap_err();
        assert!(
            err.contains("sleep") && err.contains("did not finish"),
            "{err}"
        );
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            Duration::from_secs(5),
            None,
        )
        .unwrap_err();
        assert!(
            err.contains("boom") && err.contains("exit status: 3"),
            "{err}"
        );
        let out = run(
            &mut Command::new("cat"),
            Duration::from_secs(5),
            Some(b"hello"),
        )
        .unwrap();
        assert_eq!(out.stdout, "hello");
    }
}
