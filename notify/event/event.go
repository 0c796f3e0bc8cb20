// Package event names what a run's summary is about, and the words of a
// notifier's `on` policy, which names events. It has no dependencies, so
// that the configuration loader checks `on` lists against the words the
// notifiers act on, without importing them.
package event

// The events a summary can be about.
const (
	Failure     = "failure"     // the run finished and some image failed or was skipped
	Fixed       = "fixed"       // the run succeeded after a run that did not
	Success     = "success"     // the run succeeded
	Interrupted = "interrupted" // the run was cut short (crash, signal)
	NotStarted  = "not-started" // a run could not start (engine or registry down)
	Promote     = "promote"     // a run's images were promoted to release tags
)

// Always is the policy word that wants every event.
const Always = "always"

// Policy returns the words an `on` policy may use, in the order they are
// listed to people.
func Policy() []string { return []string{Failure, Fixed, Success, Promote, Always} }
