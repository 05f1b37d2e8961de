# Images are referenced only by digest: a tag can be moved, a digest cannot.
package main

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod"}

pod_spec := input.spec.template.spec if input.kind in workload_kinds
pod_spec := input.spec.jobTemplate.spec.template.spec if input.kind == "CronJob"
pod_spec := input.spec if input.kind == "Pod"

containers contains c if some c in pod_spec.containers
containers contains c if some c in pod_spec.initContainers

deny contains msg if {
	some c in containers
	not contains(c.image, "@sha256:")
	msg := sprintf("images-by-digest: %s/%s container %q uses %q: immutable references only (name@sha256:...)", [input.kind, input.metadata.name, c.name, c.image])
}
