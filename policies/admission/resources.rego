# Every container declares what it needs and what it may use.
package main

import rego.v1

deny contains msg if {
	some c in containers
	some r in ["cpu", "memory"]
	not c.resources.requests[r]
	msg := sprintf("resources: %s/%s container %q has no %s request", [input.kind, input.metadata.name, c.name, r])
}

deny contains msg if {
	some c in containers
	not c.resources.limits.memory
	msg := sprintf("resources: %s/%s container %q has no memory limit", [input.kind, input.metadata.name, c.name])
}
