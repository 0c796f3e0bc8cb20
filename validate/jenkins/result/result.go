// Package result names the results a finished Jenkins build can have, as
// Jenkins spells them. It has no dependencies, so that the configuration
// loader checks validate.jenkins.pass against the results the Jenkins
// client reports, without importing it.
package result

const (
	Success  = "SUCCESS"
	Unstable = "UNSTABLE"
	Failure  = "FAILURE"
	Aborted  = "ABORTED"
	NotBuilt = "NOT_BUILT"
)

// All returns every result, in the order they are listed to people.
func All() []string { return []string{Success, Unstable, Failure, Aborted, NotBuilt} }
