//! The [`TrafficRouter`] port over HAProxy's runtime API (a Unix socket,
//! `level admin`): server addresses, states and weights change in the
//! running process — no reload, no dropped connection.
//!
//! Layout (written by `local up`, see `local::config`): per env/app a
//! backend named `<namespace>.<app>` with two `server-template`s of
//! [`SLOTS`] servers each, `stable1..N` and `canary1..N`, in maintenance
//! until used. A route puts each endpoint in a slot and weights the slots
//! so that the canary's share of requests is its percent whatever the
//! replica counts; unused slots go back to maintenance, after the new
//! ones are ready, so there is always somewhere to send a request.

use crate::ports::{RouterError, Split, TrafficRouter};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Server slots per track in every backend.
pub const SLOTS: usize = 4;
/// HAProxy's largest server weight.
const MAX_WEIGHT: u32 = 256;

pub struct Haproxy {
    socket: PathBuf,
    timeout: Duration,
}

/// The backend of an env's app.
pub fn backend_name(namespace: &str, app: &str) -> String {
    format!("{namespace}.{app}")
}

/// Per-server weight for a track holding `percent` of traffic on `n` servers.
fn per_server_weight(percent: u8, n: usize) -> u32 {
    if percent == 0 || n == 0 {
        return 0;
    }
    let w = (f64::from(percent) * f64::from(MAX_WEIGHT) / 100.0 / n as f64).round() as u32;
    w.clamp(1, MAX_WEIGHT)
}

/// The commands, in order, that put `split` on `backend`: new slots
/// addressed, readied and weighted first; unused slots drained last.
pub fn route_commands(backend: &str, split: &Split) -> Result<Vec<String>, String> {
    if split.canary_percent > 100 {
        return Err(format!(
            "canary weight {}% is over 100%",
            split.canary_percent
        ));
    }
    let mut set = Vec::new();
    let mut clear = Vec::new();
    for (track, endpoints, percent) in [
        ("stable", &split.stable, 100 - split.canary_percent),
        ("canary", &split.canary, split.canary_percent),
    ] {
        if endpoints.len() > SLOTS {
            return Err(format!(
                "{} {track} endpoints, over the {SLOTS} slots per track of the local router",
                endpoints.len()
            ));
        }
        if percent > 0 && endpoints.is_empty() {
            return Err(format!(
                "{percent}% of traffic for {track}, which has no endpoint"
            ));
        }
        let weight = per_server_weight(percent, endpoints.len());
        for slot in 1..=SLOTS {
            let server = format!("{backend}/{track}{slot}");
            match endpoints.get(slot - 1) {
                Some(ep) => {
                    let (host, port) = ep
                        .rsplit_once(':')
                        .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                        .ok_or_else(|| format!("endpoint {ep:?} is not host:port"))?;
                    set.push(format!("set server {server} addr {host} port {port}"));
                    set.push(format!("set weight {server} {weight}"));
                    set.push(format!("set server {server} state ready"));
                }
                None => {
                    clear.push(format!("set weight {server} 0"));
                    clear.push(format!("set server {server} state maint"));
                }
            }
        }
    }
    set.extend(clear);
    Ok(set)
}

impl Haproxy {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            timeout: Duration::from_secs(5),
        }
    }

    /// Sends one command; returns HAProxy's answer.
    pub fn command(&self, cmd: &str) -> Result<String, RouterError> {
        let unavailable =
            |e: std::io::Error| RouterError::Unavailable(format!("{}: {e}", self.socket.display()));
        let mut s = UnixStream::connect(&self.socket).map_err(unavailable)?;
        s.set_read_timeout(Some(self.timeout))
            .map_err(unavailable)?;
        s.set_write_timeout(Some(self.timeout))
            .map_err(unavailable)?;
        s.write_all(format!("{cmd}\n").as_bytes())
            .map_err(unavailable)?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(unavailable)?;
        Ok(out)
    }

    /// Sends a command that answers nothing on success.
    fn quiet(&self, cmd: &str) -> Result<(), RouterError> {
        let answer = self.command(cmd)?;
        let answer = answer.trim();
        if answer.is_empty()
            || answer.starts_with("IP changed")
            || answer.starts_with("no need to change")
        {
            return Ok(());
        }
        Err(RouterError::Refused {
            command: cmd.to_string(),
            answer: answer.to_string(),
        })
    }

    /// `show stat` rows of one backend: (server, address, weight, status).
    pub fn servers(&self, backend: &str) -> Result<Vec<ServerStat>, RouterError> {
        let csv = self.command("show stat")?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .map(|h| h.trim_start_matches("# ").split(',').collect())
            .unwrap_or_default();
        let col = |name: &str| {
            header.iter().position(|h| *h == name).ok_or_else(|| {
                RouterError::Unavailable(format!("`show stat` has no {name} column"))
            })
        };
        let (px, sv, weight, status, addr) = (
            col("pxname")?,
            col("svname")?,
            col("weight")?,
            col("status")?,
            col("addr")?,
        );
        let rows: Vec<ServerStat> = lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(px) == Some(&backend))
            .filter(|f| !matches!(f.get(sv), Some(&"BACKEND") | Some(&"FRONTEND")))
            .map(|f| ServerStat {
                server: f.get(sv).unwrap_or(&"").to_string(),
                addr: f.get(addr).unwrap_or(&"").to_string(),
                weight: f.get(weight).and_then(|w| w.parse().ok()).unwrap_or(0),
                status: f.get(status).unwrap_or(&"").to_string(),
            })
            .collect();
        if rows.is_empty() {
            return Err(RouterError::UnknownRoute(backend.to_string()));
        }
        Ok(rows)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    pub server: String,
    pub addr: String,
    pub weight: u32,
    /// `UP`, `DOWN`, `MAINT`, `no check`, …
    pub status: String,
}

impl TrafficRouter for Haproxy {
    fn route(&self, namespace: &str, app: &str, split: &Split) -> Result<(), RouterError> {
        let backend = backend_name(namespace, app);
        // Fails with UnknownRoute before anything changes.
        self.servers(&backend)?;
        let commands = route_commands(&backend, split).map_err(|e| RouterError::Refused {
            command: format!("route {backend}"),
            answer: e,
        })?;
        for c in commands {
            self.quiet(&c)?;
        }
        Ok(())
    }

    fn current(&self, namespace: &str, app: &str) -> Result<Split, RouterError> {
        let backend = backend_name(namespace, app);
        let servers = self.servers(&backend)?;
        let mut split = Split {
            stable: Vec::new(),
            canary: Vec::new(),
            canary_percent: 0,
        };
        let (mut stable_w, mut canary_w) = (0u32, 0u32);
        for s in servers.iter().filter(|s| !s.status.starts_with("MAINT")) {
            if s.server.starts_with("stable") {
                split.stable.push(s.addr.clone());
                stable_w += s.weight;
            } else if s.server.starts_with("canary") {
                split.canary.push(s.addr.clone());
                canary_w += s.weight;
            }
        }
        if stable_w + canary_w > 0 {
            split.canary_percent =
                (f64::from(canary_w) * 100.0 / f64::from(stable_w + canary_w)).round() as u8;
        }
        Ok(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(stable: usize, canary: usize, pct: u8) -> Split {
        Split {
            stable: (0..stable)
                .map(|i| format!("127.0.0.1:{}", 20000 + i))
                .collect(),
            canary: (0..canary)
                .map(|i| format!("127.0.0.1:{}", 21000 + i))
                .collect(),
            canary_percent: pct,
        }
    }

    #[test]
    fn weights_give_the_canary_its_share_whatever_the_replica_counts() {
        for (s, c) in [(1, 1), (2, 1), (3, 1), (4, 2), (1, 4)] {
            for pct in [1u8, 10, 25, 50, 90] {
                let ws = per_server_weight(100 - pct, s) * s as u32;
                let wc = per_server_weight(pct, c) * c as u32;
                let share = f64::from(wc) * 100.0 / f64::from(ws + wc);
                assert!(
                    (share - f64::from(pct)).abs() < 1.0,
                    "{s} stable, {c} canary, {pct}%: got {share:.2}%"
                );
            }
        }
        assert_eq!(per_server_weight(0, 3), 0);
        assert_eq!(per_server_weight(100, 1), 256);
    }

    #[test]
    fn new_servers_are_ready_before_old_ones_are_drained() {
        let cmds = route_commands("demo-dev.demo", &split(1, 1, 10)).unwrap();
        let first_maint = cmds
            .iter()
            .position(|c| c.ends_with("state maint"))
            .unwrap();
        let last_ready = cmds
            .iter()
            .rposition(|c| c.ends_with("state ready"))
            .unwrap();
        assert!(last_ready < first_maint, "{cmds:#?}");
        assert!(
            cmds.contains(
                &"set server demo-dev.demo/canary1 addr 127.0.0.1 port 21000".to_string()
            )
        );
        assert!(cmds.contains(&"set weight demo-dev.demo/stable1 230".to_string()));
        assert!(cmds.contains(&"set weight demo-dev.demo/canary1 26".to_string()));
    }

    #[test]
    fn impossible_splits_are_refused_before_anything_is_sent() {
        assert!(
            route_commands("b", &split(0, 1, 10))
                .unwrap_err()
                .contains("stable, which has no endpoint")
        );
        assert!(
            route_commands("b", &split(5, 0, 0))
                .unwrap_err()
                .contains("over the 4 slots")
        );
        assert!(
            route_commands("b", &split(1, 0, 101))
                .unwrap_err()
                .contains("over 100%")
        );
        let mut bad = split(1, 0, 0);
        bad.stable[0] = "nohost".into();
        assert!(
            route_commands("b", &bad)
                .unwrap_err()
                .contains("not host:port")
        );
    }
}
