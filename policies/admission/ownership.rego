# Someone owns every workload and someone is paged for it.
package main

import rego.v1

deny contains msg if {
	input.kind in workload_kinds | {"CronJob", "Service"}
	some label in ["team", "oncall"]
	not input.metadata.labels[label]
	msg := sprintf("ownership: %s/%s has no %q label", [input.kind, input.metadata.name, label])
}
