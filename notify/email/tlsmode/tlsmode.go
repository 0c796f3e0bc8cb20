// Package tlsmode names how the email notifier secures its connection to
// the SMTP server, and the port each mode uses by default. It has no
// dependencies, so that the configuration loader applies the same rules as
// the notifier, with file, line and key, without importing it.
package tlsmode

const (
	StartTLS = "starttls" // plain connect, then mandatory STARTTLS (submission, port 587)
	Implicit = "tls"      // TLS from the first byte (submissions, port 465)
	None     = "none"     // no encryption at all (a relay on localhost, port 25)
)

// Default is the mode when none is given.
const Default = StartTLS

// Port returns the default port of mode, and false when mode is none of
// StartTLS, Implicit and None.
func Port(mode string) (int, bool) {
	switch mode {
	case StartTLS:
		return 587, true
	case Implicit:
		return 465, true
	case None:
		return 25, true
	}
	return 0, false
}
