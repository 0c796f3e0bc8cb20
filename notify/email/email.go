// Package email sends a run's summary by SMTP submission: one
// multipart/alternative message (plain text and HTML) per summary, over
// STARTTLS, implicit TLS or, if asked, plain TCP.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	netmail "net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"

	mail "github.com/wneessen/go-mail"

	"nightshift/notify"
	"nightshift/notify/email/tlsmode"
)

// commandTimeout bounds each SMTP exchange; the caller's context bounds the
// whole send.
const commandTimeout = 30 * time.Second

// Config says where summaries go and how to get there.
type Config struct {
	Host     string
	Port     int    // default: tlsmode.Port(TLS), 587 for starttls, 465 for tls, 25 for none
	TLS      string // a tlsmode: "starttls" (default; mandatory STARTTLS, fail if the server does not offer it), "tls" (implicit TLS), "none"
	Username string // AUTH only when set
	Password string // never in errors or logs
	From     string
	To       []string
	// TLSConfig overrides the TLS client config (tests trust their own CA
	// with it); nil uses the system roots with ServerName = Host.
	TLSConfig *tls.Config
}

// String describes c without its password, so that a Config printed with
// %v or %+v leaks nothing.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("{Host:%s Port:%d TLS:%s Username:%s Password:%s From:%s To:%v}",
		c.Host, c.Port, c.TLS, c.Username, pw, c.From, c.To)
}

// Notifier sends summaries by email. It holds no connection: each Notify
// dials afresh, so a notifier that sends once a night never has a stale one.
type Notifier struct {
	cfg Config // validated, with Port and TLSConfig filled in
}

// New checks c and returns a notifier for it. It does not connect: a mail
// server that is down at start-up is a retry later, not a broken config.
func New(c Config) (*Notifier, error) {
	if c.Host == "" {
		return nil, errors.New("email: no SMTP host")
	}
	if c.TLS == "" {
		c.TLS = tlsmode.Default
	}
	port, known := tlsmode.Port(c.TLS)
	if !known {
		return nil, fmt.Errorf("email: TLS mode %q is not %q, %q or %q", c.TLS, tlsmode.StartTLS, tlsmode.Implicit, tlsmode.None)
	}
	if c.Port == 0 {
		c.Port = port
	}
	if c.Port < 1 || c.Port > 65535 {
		return nil, fmt.Errorf("email: port %d is not a TCP port", c.Port)
	}
	if c.Password != "" && c.Username == "" {
		return nil, errors.New("email: a password but no user name")
	}
	if _, err := netmail.ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("email: from address %q: %w", c.From, err)
	}
	if len(c.To) == 0 {
		return nil, errors.New("email: no recipient")
	}
	for _, to := range c.To {
		if _, err := netmail.ParseAddress(to); err != nil {
			return nil, fmt.Errorf("email: to address %q: %w", to, err)
		}
	}
	c.To = append([]string(nil), c.To...)
	if c.TLSConfig == nil {
		c.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		c.TLSConfig = c.TLSConfig.Clone() // the caller's config stays theirs
	}
	if c.TLSConfig.ServerName == "" {
		c.TLSConfig.ServerName = c.Host
	}
	return &Notifier{cfg: c}, nil
}

// Name is the notifier's name in config policies and the outbox.
func (n *Notifier) Name() string { return "email" }

// String names the server, never the credentials.
func (n *Notifier) String() string {
	return fmt.Sprintf("email via %s (%s)", n.addr(), n.cfg.TLS)
}

func (n *Notifier) addr() string {
	return net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.cfg.Port))
}

// Notify sends s as one message to every recipient. It reports retry for
// what may pass (SMTP 4xx, a refused, reset or timed-out connection, a
// cancelled context) and not for what will not (SMTP 5xx, failed AUTH, a
// server without the required STARTTLS, a bad certificate, a bad address).
// A message the server accepted is a success even if the goodbye fails:
// sending it again would only duplicate it.
func (n *Notifier) Notify(ctx context.Context, s notify.Summary) (retry bool, err error) {
	msg, err := n.message(s)
	if err != nil {
		return false, fmt.Errorf("email: %w", err)
	}

	// go-mail sets deadlines per command but does not watch ctx once
	// connected, so the connection is closed when ctx ends.
	var stops []func() bool
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := n.dial(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		stops = append(stops, context.AfterFunc(ctx, func() { conn.Close() }))
		return conn, nil
	}

	opts := []mail.Option{
		mail.WithPort(n.cfg.Port),
		mail.WithTimeout(commandTimeout),
		mail.WithTLSConfig(n.cfg.TLSConfig),
		mail.WithDialContextFunc(dial),
		mail.WithoutRset(), // one message per connection: nothing to reset
	}
	switch n.cfg.TLS {
	case tlsmode.StartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case tlsmode.Implicit:
		opts = append(opts, mail.WithSSL()) // the dialer does the TLS
	case tlsmode.None:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if n.cfg.Username != "" {
		// Not go-mail's auto-discovery: it decides on encryption by its own
		// dialer, which ours replaces, and would refuse PLAIN over implicit
		// TLS. The PLUS variants are left out: over TLS plain SCRAM is enough.
		opts = append(opts, mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1,
			mail.SMTPAuthCramMD5, mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(n.cfg.Username), mail.WithPassword(n.cfg.Password))
	}
	client, err := mail.NewClient(n.cfg.Host, opts...)
	if err != nil {
		return false, n.fail(err)
	}

	err = client.DialAndSendWithContext(ctx, msg)
	if msg.IsDelivered() {
		return false, nil
	}
	if err == nil {
		// go-mail said nothing yet sent nothing: keep the message for later
		// rather than mark it sent.
		return true, n.fail(errors.New("message not delivered, no error given"))
	}
	if ctx.Err() != nil {
		// The closed connection is how we stopped, not what went wrong.
		return true, n.fail(fmt.Errorf("%w (%v)", ctx.Err(), err))
	}
	return temporary(err), n.fail(err)
}

// dial connects to the server, in TLS from the start in implicit mode.
func (n *Notifier) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	if n.cfg.TLS == tlsmode.Implicit {
		td := &tls.Dialer{NetDialer: d, Config: n.cfg.TLSConfig}
		return td.DialContext(ctx, network, addr)
	}
	return d.DialContext(ctx, network, addr)
}

// message builds the mail for s.
func (n *Notifier) message(s notify.Summary) (*mail.Msg, error) {
	subject, text, html, err := Render(s)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	m := mail.NewMsg()
	if err := m.From(n.cfg.From); err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	if err := m.To(n.cfg.To...); err != nil {
		return nil, fmt.Errorf("to address: %w", err)
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	// A machine writes these: out-of-office replies would go nowhere useful.
	m.SetBulk()
	if s.Run.ID != 0 { // a run that could not start has no record
		m.SetGenHeader("X-Nightshift-Run", strconv.FormatUint(s.Run.ID, 10))
	}
	m.SetBodyString(mail.TypeTextPlain, text)
	m.AddAlternativeString(mail.TypeTextHTML, html)
	return m, nil
}

// fail puts the server in front of err and the password out of it: a
// server may echo what it was sent, and errors end up in logs and the store.
func (n *Notifier) fail(err error) error {
	return &sendError{addr: n.addr(), err: err, secret: n.cfg.Password}
}

type sendError struct {
	addr   string
	err    error
	secret string
}

func (e *sendError) Error() string {
	msg := fmt.Sprintf("email via %s: %v", e.addr, e.err)
	if e.secret != "" {
		msg = strings.ReplaceAll(msg, e.secret, "[redacted]")
	}
	return msg
}

func (e *sendError) Unwrap() error { return e.err }

// temporary reports whether a send that failed with err may succeed later:
// SMTP 4xx replies and network trouble may; SMTP 5xx replies, TLS and
// certificate failures, a server without STARTTLS or AUTH, and bad
// addresses will not until someone changes something. Unknown errors count
// as permanent, so that a misconfiguration gives up rather than retrying
// all night.
func temporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}

	// go-mail's SendError covers MAIL FROM, RCPT TO and DATA; it keeps the
	// SMTP reply to itself, so its code and IsTemp are all there is.
	var se *mail.SendError
	if errors.As(err, &se) {
		switch {
		case se.IsTemp():
			return true
		case se.ErrorCode() >= 500:
			return false
		}
		switch se.Reason {
		case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
			return false
		}
		return true // no SMTP code: the connection broke mid-transaction
	}

	// Greeting, EHLO, STARTTLS and AUTH replies come as they are.
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 400 && te.Code < 500
	}

	// TLS failures are configuration: a certificate, a version, a port
	// that does not speak TLS. Some come wrapped in a net.OpError.
	var (
		certErr   *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		opErr     *net.OpError
	)
	if errors.As(err, &certErr) || errors.As(err, &recordErr) || errors.As(err, &alertErr) ||
		(errors.As(err, &opErr) && opErr.Op == "remote error") {
		return false
	}

	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTimeout || dnsErr.IsTemporary
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ETIMEDOUT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	// The server hung up on us.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	return false
}
