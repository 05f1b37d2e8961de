# Workloads run as non-root, unprivileged, without host access.
package main

import rego.v1

deny contains msg if {
	some c in containers
	c.securityContext.privileged == true
	msg := sprintf("no-privileged: %s/%s container %q is privileged", [input.kind, input.metadata.name, c.name])
}

deny contains msg if {
	not pod_spec.securityContext.runAsNonRoot == true
	some c in containers
	not c.securityContext.runAsNonRoot == true
	msg := sprintf("run-as-non-root: %s/%s container %q may run as root: set runAsNonRoot: true", [input.kind, input.metadata.name, c.name])
}

deny contains msg if {
	pod_spec.hostNetwork == true
	msg := sprintf("no-host-network: %s/%s uses hostNetwork", [input.kind, input.metadata.name])
}

deny contains msg if {
	some v in pod_spec.volumes
	v.hostPath
	msg := sprintf("no-host-path: %s/%s mounts hostPath volume %q", [input.kind, input.metadata.name, v.name])
}
