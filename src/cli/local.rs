//! `platform-capstone local up|down|status|demo-images`: the local stack.

use super::Output;
use crate::local::{PortChoice, Stack};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs what a release needs on this machine, on loopback, under one state \
directory: docker-registry, HAProxy (one frontend per env's app, runtime API socket, \
Prometheus exporter), Prometheus (scraping HAProxy and the app pods every second) and \
podman with project-local containers.conf / storage.conf / registries.conf (never /etc).\n\n\
`up` is idempotent and keeps what already runs; `down` removes every managed pod, stops \
every process and checks no port is left listening; `status` says what is up and where."
)]
pub struct Args {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, clap::Args)]
struct StateDir {
    /// Where the stack keeps its configs, data, logs and stack.json.
    #[arg(
        long,
        value_name = "DIR",
        env = "PLATFORM_CAPSTONE_LOCAL",
        default_value = crate::config::DEFAULT_LOCAL_STACK
    )]
    state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PortsArg {
    /// registry 5000, Prometheus 9090, HAProxy exporter 8405, frontends from 18080
    Default,
    /// free ports picked at the first `up` (then kept)
    Auto,
}

#[derive(Debug, clap::Subcommand)]
enum LocalCommand {
    /// Start the stack (or keep what already runs).
    Up {
        #[command(flatten)]
        dir: StateDir,
        /// A frontend for NAMESPACE/APP (repeatable). Default: the routes of
        /// --repo's envs, else those already configured, else the blueprint's.
        #[arg(long, value_name = "NAMESPACE/APP")]
        route: Vec<String>,
        /// A config repo (directory) whose podman envs get frontends.
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Port plan for a new stack.
        #[arg(long, value_enum, default_value = "default")]
        ports: PortsArg,
    },
    /// Remove every managed pod and stop every process.
    Down {
        #[command(flatten)]
        dir: StateDir,
    },
    /// What is up, where, and which pods run.
    Status {
        #[command(flatten)]
        dir: StateDir,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Build the demo image (good and bad), push, sign and attest them.
    DemoImages {
        #[command(flatten)]
        dir: StateDir,
        /// The static demo binary (scripts/demo-images builds it).
        #[arg(long, value_name = "PATH")]
        binary: PathBuf,
        /// Cosign private key (PKCS#8 PEM, from `keygen --cosign`).
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// Version of the good image; the bad one is VERSION-bad.
        #[arg(long, default_value = "1.0.0")]
        version: String,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
}

fn routes_of_repo(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let reader = crate::source::DirReader::open(dir)
        .with_context(|| format!("{}: cannot open the config repo", dir.display()))?;
    let repo = crate::config::load_repo(&reader);
    if let Some(p) = repo.problems.first() {
        anyhow::bail!(
            "{p} (run `platform-capstone validate --repo {}`)",
            dir.display()
        );
    }
    let mut routes: Vec<(String, String)> = repo
        .envs
        .iter()
        .filter(|e| e.target.kind == crate::config::TargetKind::Podman)
        .map(|e| (e.target.namespace.clone(), e.target.app.clone()))
        .collect();
    routes.dedup();
    Ok(routes)
}

fn blueprint_routes() -> anyhow::Result<Vec<(String, String)>> {
    let tmp = tempfile::tempdir()?;
    crate::blueprint::write_files(tmp.path())?;
    routes_of_repo(tmp.path())
}

fn parse_route(r: &str) -> anyhow::Result<(String, String)> {
    let (ns, app) = r
        .split_once('/')
        .filter(|(n, a)| !n.is_empty() && !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| super::usage(format!("--route {r:?}: expected NAMESPACE/APP")))?;
    Ok((ns.to_string(), app.to_string()))
}

fn say(line: &str) {
    eprintln!("{line}");
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        LocalCommand::Up {
            dir,
            route,
            repo,
            ports,
        } => {
            let stack = Stack::new(&dir.state_dir)?;
            let mut routes: Vec<(String, String)> = route
                .iter()
                .map(|r| parse_route(r))
                .collect::<anyhow::Result<_>>()?;
            if routes.is_empty() {
                if let Some(repo) = &repo {
                    routes = routes_of_repo(repo)?;
                } else if stack.load().is_none_or(|s| s.routes.is_empty()) {
                    routes = blueprint_routes()?;
                }
            }
            let choice = match ports {
                PortsArg::Default => PortChoice::Default,
                PortsArg::Auto => PortChoice::Auto,
            };
            let state = stack.up(&routes, choice, &mut |l| say(l))?;
            println!(
                "local stack up in {} (sockets in {})\n  registry   localhost:{}\n  prometheus {}\n  haproxy    exporter 127.0.0.1:{}, socket {}",
                stack.dir.display(),
                stack.run.display(),
                state.ports.registry,
                Stack::prometheus_url(&state),
                state.ports.haproxy_exporter,
                stack.haproxy_socket().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Down { dir } => {
            let stack = Stack::new(&dir.state_dir)?;
            stack.down(&mut |l| say(l))?;
            println!("local stack down: no process, pod or port left");
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Status { dir, output } => {
            let stack = Stack::new(&dir.state_dir)?;
            let status = stack.status();
            let all_up = !status.components.is_empty() && status.components.iter().all(|c| c.up);
            if output.is_data() {
                super::print_data(output, &status)?;
            } else {
                let mut out = format!(
                    "state dir: {}\nruntime dir: {}\n",
                    status.state_dir, status.runtime_dir
                );
                if status.components.is_empty() {
                    out.push_str("not set up: run `platform-capstone local up`\n");
                }
                for c in &status.components {
                    out.push_str(&format!(
                        "{:<11} {:<6} {:<16} {}\n",
                        c.name,
                        if c.up { "up" } else { "DOWN" },
                        c.address,
                        c.detail
                    ));
                }
                for r in &status.routes {
                    out.push_str(&format!(
                        "route       {}/{} -> http://127.0.0.1:{}/\n",
                        r.namespace, r.app, r.port
                    ));
                }
                for p in &status.pods {
                    out.push_str(&format!(
                        "pod         {} {} ({}/{} {}, {})\n",
                        p.name,
                        if p.running { "running" } else { "NOT RUNNING" },
                        p.namespace,
                        p.app,
                        p.track,
                        p.release
                    ));
                }
                super::write_stdout(&out)?;
            }
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(super::exit::NO)
            })
        }
        LocalCommand::DemoImages {
            dir,
            binary,
            key,
            version,
            output,
        } => {
            let stack = Stack::new(&dir.state_dir)?;
            let state = stack
                .load()
                .context("the local stack is not set up: run `platform-capstone local up` first")?;
            let pem =
                std::fs::read_to_string(&key).with_context(|| format!("{}", key.display()))?;
            let sk = crate::cosign_key::load(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
            let published = crate::local::images::publish(
                &stack.podman_config(),
                &binary,
                &Stack::registry_host(&state),
                &crate::local::images::good_and_bad(&version),
                &sk,
                &mut |l| say(l),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            if output.is_data() {
                super::print_data(output, &published)?;
            } else {
                let text: String = published
                    .iter()
                    .map(|p| format!("{:<16} {}\n", p.tag, p.reference))
                    .collect();
                super::write_stdout(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
