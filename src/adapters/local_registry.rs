//! A CNCF Distribution registry (Debian's `docker-registry`) on a loopback
//! port, storing under a directory: for tests, benches and the local stack.
//! Stopped (killed and reaped) on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LocalRegistry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub host: String,
}

impl LocalRegistry {
    /// Starts a registry storing under `dir`, on a free loopback port;
    /// waits (bounded) until it accepts connections.
    pub fn start(dir: &Path) -> Result<Self, String> {
        Self::start_with(dir, "")
    }

    /// As [`start`](Self::start), a private registry: every request needs
    /// HTTP basic credentials from `htpasswd` (bcrypt entries).
    pub fn start_with_htpasswd(dir: &Path, htpasswd: &Path) -> Result<Self, String> {
        Self::start_with(
            dir,
            &format!(
                "auth:\n  htpasswd:\n    realm: platform-capstone\n    path: {}\n",
                htpasswd.display()
            ),
        )
    }

    /// As [`start`](Self::start), a registry behind token authentication
    /// (the distribution token protocol): clients get a bearer token from
    /// `realm`, which signs it with a certificate of `rootcertbundle`.
    pub fn start_with_token_auth(
        dir: &Path,
        realm: &str,
        service: &str,
        issuer: &str,
        rootcertbundle: &Path,
    ) -> Result<Self, String> {
        Self::start_with(
            dir,
            &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                rootcertbundle.display()
            ),
        )
    }

    fn start_with(dir: &Path, extra_yaml: &str) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("registry.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra_yaml}",
            dir.join("data").display()
        );
        crate::fsutil::write_atomic(&config, yaml.as_bytes(), None)
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start docker-registry ({e}); install it: apt-get install docker-registry"))?;
        let mut me = Self {
            child,
            host: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                me.stop();
                return Err(format!(
                    "docker-registry did not listen on 127.0.0.1:{port} within 15 s"
                ));
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                return Err(format!("docker-registry exited at start ({status})"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
