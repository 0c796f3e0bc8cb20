package email

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nightshift/internal/testenv"
	"nightshift/notify/notifytest"
)

func TestNew(t *testing.T) {
	t.Parallel()
	ok := Config{Host: "smtp.example.org", From: "nightshift <ci@example.org>", To: []string{"team@example.org"}}
	for _, tc := range []struct {
		name     string
		edit     func(*Config)
		port     int    // wanted, when valid
		problem  string // in the error, when not
		tlsStart string
	}{
		{name: "default starttls", edit: func(*Config) {}, port: 587},
		{name: "tls", edit: func(c *Config) { c.TLS = "tls" }, port: 465},
		{name: "none", edit: func(c *Config) { c.TLS = "none" }, port: 25},
		{name: "explicit port", edit: func(c *Config) { c.Port = 2525 }, port: 2525},
		{name: "no host", edit: func(c *Config) { c.Host = "" }, problem: "no SMTP host"},
		{name: "bad mode", edit: func(c *Config) { c.TLS = "ssl" }, problem: `TLS mode "ssl"`},
		{name: "bad port", edit: func(c *Config) { c.Port = 70000 }, problem: "port 70000"},
		{name: "bad from", edit: func(c *Config) { c.From = "not an address" }, problem: `from address "not an address"`},
		{name: "no to", edit: func(c *Config) { c.To = nil }, problem: "no recipient"},
		{name: "bad to", edit: func(c *Config) { c.To = []string{"team@example.org", "bob@"} }, problem: `to address "bob@"`},
		{name: "password alone", edit: func(c *Config) { c.Password = "hunter2" }, problem: "no user name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			n, err := New(c)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("New = %v, want an error about %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.cfg.Port != tc.port || n.cfg.TLSConfig.ServerName != c.Host || n.Name() != "email" {
				t.Errorf("port %d, server name %q, name %q; want %d, %q, email", n.cfg.Port, n.cfg.TLSConfig.ServerName, n.Name(), tc.port, c.Host)
			}
		})
	}
}

// TestPasswordNotPrinted: a config or notifier printed into a log keeps the
// password out of it.
func TestPasswordNotPrinted(t *testing.T) {
	t.Parallel()
	c := Config{Host: "smtp.example.org", Username: "bot", Password: "s3cret-pa55", From: "ci@example.org", To: []string{"team@example.org"}}
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprint(n), fmt.Sprintf("%+v", n)} {
		if strings.Contains(s, c.Password) {
			t.Errorf("printed the password: %s", s)
		}
	}
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&textproto.Error{Code: 421, Msg: "4.3.2 shutting down"}, true},
		{fmt.Errorf("dial failed: %w", &textproto.Error{Code: 451, Msg: "4.7.1 greylisted"}), true},
		{fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 535, Msg: "5.7.8 bad credentials"}), false},
		{&textproto.Error{Code: 550, Msg: "5.1.1 no such user"}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", IsNotFound: true}}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", IsTemporary: true}}, true},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{fmt.Errorf("send failed: %w", io.EOF), true},
		{context.DeadlineExceeded, true},
		{errors.New(`STARTTLS mode set to: "TLSMandatory", but target host does not support STARTTLS`), false},
		{nil, false},
	} {
		if got := temporary(tc.err); got != tc.want {
			t.Errorf("temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// notifier is a notifier for a server on loopback at addr.
func notifier(t *testing.T, addr string, edit func(*Config)) *Notifier {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Host: host, From: "nightshift <ci@example.org>", To: []string{"team@example.org"}, TLS: "none"}
	c.Port, _ = strconv.Atoi(port)
	if edit != nil {
		edit(&c)
	}
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNetworkTrouble: what never reaches an SMTP conversation is worth
// retrying, and a context that ends stops the send at once.
func TestNetworkTrouble(t *testing.T) {
	t.Parallel()

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		addr, err := testenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		retry, err := notifier(t, addr, nil).Notify(context.Background(), notifytest.Sample())
		if err == nil || !retry || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Notify = %v, %v; want retry after connection refused", retry, err)
		}
	})

	// A server that accepts and then says nothing: only the context ends
	// the wait, well before go-mail's own 30s timeout.
	t.Run("silent server", func(t *testing.T) {
		t.Parallel()
		addr := serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		retry, err := notifier(t, addr, nil).Notify(ctx, notifytest.Sample())
		if err == nil || !retry || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Notify = %v, %v; want retry after the deadline", retry, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Notify took %s after a 300ms deadline", took)
		}
	})

	t.Run("421 greeting", func(t *testing.T) {
		t.Parallel()
		addr := serve(t, func(c net.Conn) { io.WriteString(c, "421 4.3.2 Service shutting down\r\n") })
		retry, err := notifier(t, addr, nil).Notify(context.Background(), notifytest.Sample())
		if err == nil || !retry || !strings.Contains(err.Error(), "421") {
			t.Errorf("Notify = %v, %v; want retry after 421", retry, err)
		}
	})

	t.Run("hang up", func(t *testing.T) {
		t.Parallel()
		addr := serve(t, func(c net.Conn) {})
		retry, err := notifier(t, addr, nil).Notify(context.Background(), notifytest.Sample())
		if err == nil || !retry {
			t.Errorf("Notify = %v, %v; want retry after the server hung up", retry, err)
		}
	})
}

// serve accepts connections on loopback, hands each to handle and closes it.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}
