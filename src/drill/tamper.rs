//! The drills' fault injector: live state changed behind the tool's back
//! through podman directly, as someone with access to the host would —
//! what the config-drift drill (and the drift tests) detect and heal. Not
//! part of the podman target: the target only ever applies what git says.

use crate::adapters::podman::{PORT_LABEL, Podman, RUNTIME_ENV};
use crate::ports::TargetError;

/// Edits a container's env (name, value) list in place.
pub type EnvEdit<'a> = dyn Fn(&mut Vec<(String, String)>) + 'a;

/// Changes live state behind the tool's back, as someone with podman
/// access would (the config-drift drill, tests): every managed pod of
/// `namespace` is removed and played again from a hand-written
/// manifest — same name, labels, image and port; env as `edit` leaves
/// it. Returns the pods replaced.
pub fn tamper(
    podman: &Podman,
    namespace: &str,
    edit: &EnvEdit<'_>,
) -> Result<Vec<String>, TargetError> {
    let pods = podman.pods(Some(namespace))?;
    let mut out = Vec::new();
    for pod in pods {
        let inspected = podman.inspect_containers(&pod.containers)?;
        let Some(c) = inspected.first() else { continue };
        let image = c["ImageName"].as_str().unwrap_or_default().to_string();
        let mut env: Vec<(String, String)> = c["Config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str()?.split_once('='))
            .filter(|(k, _)| !RUNTIME_ENV.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        edit(&mut env);
        let port: u16 = pod
            .labels
            .get(PORT_LABEL)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| TargetError::Unavailable(format!("{}: no port label", pod.name)))?;
        let cname = c["Name"].as_str().unwrap_or_default();
        let short = cname
            .strip_prefix(&format!("{}-", pod.name))
            .unwrap_or(cname)
            .to_string();
        // The port is published by the pod's infra container.
        let pod_info: serde_json::Value = podman
            .podman(&["pod", "inspect", "--format", "json", &pod.name])
            .ok()
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default();
        let info = if pod_info.is_array() {
            pod_info[0].clone()
        } else {
            pod_info
        };
        let container_port: u16 = [
            &info["InfraConfig"]["PortBindings"],
            &c["HostConfig"]["PortBindings"],
        ]
        .iter()
        .find_map(|b| {
            b.as_object()
                .and_then(|m| m.keys().next())
                .and_then(|k| k.split('/').next())
                .and_then(|p| p.parse().ok())
        })
        .ok_or_else(|| {
            TargetError::Unavailable(format!("{}: no published container port", pod.name))
        })?;
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name, "labels": pod.labels},
            "spec": {"containers": [{
                "name": short,
                "image": image,
                "env": env.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "ports": [{"containerPort": container_port, "hostIP": "127.0.0.1", "hostPort": port}],
            }]},
        });
        podman.remove_pods(std::slice::from_ref(&pod.name))?;
        podman.play(
            &format!("{}.tampered.json", pod.name),
            manifest.to_string().as_bytes(),
        )?;
        out.push(pod.name);
    }
    Ok(out)
}
