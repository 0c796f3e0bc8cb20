package email

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"nightshift/internal/testenv"
	"nightshift/notify/notifytest"
)

// The end-to-end tests talk to aiosmtpd, a real SMTP server, run by
// Debian's Python: apt-get install python3-aiosmtpd.
const python = "/usr/bin/python3"

const (
	smtpUser     = "nightshift-bot"
	smtpPassword = "correct-horse-battery-staple"
)

// requireAiosmtpd skips the test when the server cannot run here, but fails
// it under CI=true, where a skip would hide a broken install step.
func requireAiosmtpd(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import aiosmtpd").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("end-to-end test needs %s with aiosmtpd (apt-get install python3-aiosmtpd): %v %s",
		python, err, strings.TrimSpace(string(out)))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// smtpd is a running testdata/smtpd.py.
type smtpd struct {
	Addr  string         // 127.0.0.1:port
	Dir   string         // where it writes the messages it accepts
	Roots *x509.CertPool // trusts its certificate
}

// startSMTPD starts an SMTP server on loopback with a certificate of its
// own, requiring AUTH as smtpUser; flags are smtpd.py's options. The
// server is stopped by its PID when the test ends.
func startSMTPD(t *testing.T, flags ...string) *smtpd {
	t.Helper()
	requireAiosmtpd(t)
	dir := t.TempDir()
	certFile, keyFile, roots := selfSigned(t, dir)
	s := &smtpd{Dir: filepath.Join(dir, "mail"), Roots: roots}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "smtpd.py"))
	if err != nil {
		t.Fatal(err)
	}
	// The port is free when chosen, not necessarily when bound: another
	// test may take it in between, so a server that cannot start gets a
	// second and third chance.
	var errs []error
	for range 3 {
		addr, err := testenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		args := append([]string{script, "--port", port, "--dir", s.Dir, "--cert", certFile, "--key", keyFile,
			"--user", smtpUser, "--password", smtpPassword}, flags...)
		if err := s.start(t, filepath.Join(dir, "smtpd.log"), port, args); err != nil {
			errs = append(errs, err)
			continue
		}
		s.Addr = addr
		return s
	}
	t.Fatalf("smtpd.py did not start: %v", errors.Join(errs...))
	return nil
}

func (s *smtpd) start(t *testing.T, logFile, port string, args []string) error {
	log, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(python, args...)
	cmd.Stderr = log
	// Its own process group, so that a Ctrl-C of the test does not kill it
	// before the test stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The server exits when this pipe closes: it never outlives the test
	// binary, even one killed without cleanup.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") {
				ready <- sc.Text()
			}
		}
		cmd.Wait() // after stdout is drained, as os/exec requires
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		stdin.Close()
	}

	select {
	case line := <-ready:
		if line != "ready "+port {
			stop()
			return fmt.Errorf("smtpd.py said %q, want ready %s", line, port)
		}
	case <-exited:
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("smtpd.py exited: %s", lastLines(string(b), 5))
	case <-time.After(20 * time.Second):
		stop()
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("smtpd.py not ready after 20s: %s", lastLines(string(b), 5))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("smtpd.py log:\n%s", b)
		}
	})
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nightshift test smtpd"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// notifierFor is a notifier that logs in to s and trusts its certificate.
func (s *smtpd) notifierFor(t *testing.T, edit func(*Config)) *Notifier {
	t.Helper()
	return notifier(t, s.Addr, func(c *Config) {
		c.TLS, c.Username, c.Password = "starttls", smtpUser, smtpPassword
		c.TLSConfig = &tls.Config{RootCAs: s.Roots}
		if edit != nil {
			edit(c)
		}
	})
}

// messages returns the paths of the messages s accepted.
func (s *smtpd) messages(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(s.Dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func send(t *testing.T, n *Notifier) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Notify(ctx, notifytest.Sample())
}

func TestDeliverSTARTTLS(t *testing.T) {
	t.Parallel()
	s := startSMTPD(t)
	if retry, err := send(t, s.notifierFor(t, nil)); err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	checkDelivered(t, s)
}

func TestDeliverImplicitTLS(t *testing.T) {
	t.Parallel()
	s := startSMTPD(t, "--implicit-tls")
	if retry, err := send(t, s.notifierFor(t, func(c *Config) { c.TLS = "tls" })); err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	checkDelivered(t, s)
}

// TestGreylisted: a 451 is worth a retry, and the retry gets through.
func TestGreylisted(t *testing.T) {
	t.Parallel()
	s := startSMTPD(t, "--tempfail", "1")
	n := s.notifierFor(t, nil)
	retry, err := send(t, n)
	if err == nil || !retry || !strings.Contains(err.Error(), "451") {
		t.Fatalf("first Notify = %v, %v; want retry after 451", retry, err)
	}
	t.Logf("greylisted: %v", err)
	if got := s.messages(t); len(got) != 0 {
		t.Fatalf("server kept %v after a 451", got)
	}
	if retry, err := send(t, n); err != nil {
		t.Fatalf("second Notify = %v, %v", retry, err)
	}
	checkDelivered(t, s)
}

// TestRefused: what will not get better is not retried, nothing is sent,
// and the password is never in the error.
func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags []string
		edit  func(*Config)
		want  string // in the error
	}{
		{name: "wrong password", edit: func(c *Config) { c.Password = "wrong-password-never-shown" }, want: "535"},
		{name: "mailbox unavailable", flags: []string{"--reject-rcpt"}, want: "550"},
		{name: "no STARTTLS offered", flags: []string{"--no-starttls"}, want: "STARTTLS"},
		{name: "untrusted certificate", edit: func(c *Config) { c.TLSConfig = nil }, want: "certificate"},
		{name: "implicit TLS to a STARTTLS port", edit: func(c *Config) { c.TLS = "tls" }, want: "tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startSMTPD(t, tc.flags...)
			n := s.notifierFor(t, tc.edit)
			retry, err := send(t, n)
			if err == nil || retry {
				t.Fatalf("Notify = %v, %v; want a permanent error", retry, err)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), n.cfg.Password) {
				t.Errorf("error %q shows the password", err)
			}
			if got := s.messages(t); len(got) != 0 {
				t.Errorf("server accepted %v", got)
			}
		})
	}
}

// checkDelivered reads the one message s accepted: the subject, the run
// header, Date and Message-ID, and both alternative parts.
func checkDelivered(t *testing.T, s *smtpd) {
	t.Helper()
	paths := s.messages(t)
	if len(paths) != 1 {
		t.Fatalf("server accepted %d messages, want 1", len(paths))
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := netmail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	wantSubject, wantText, wantHTML, err := Render(notifytest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	if subject != wantSubject {
		t.Errorf("Subject = %q, want %q", subject, wantSubject)
	}
	if got := m.Header.Get("X-Nightshift-Run"); got != "42" {
		t.Errorf("X-Nightshift-Run = %q, want 42", got)
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if id := m.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.Contains(id, "@") {
		t.Errorf("Message-ID = %q", id)
	}
	if to := m.Header.Get("To"); !strings.Contains(to, "team@example.org") {
		t.Errorf("To = %q", to)
	}

	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart() // raw: the transfer encoding is checked here
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	if len(parts) != 2 {
		t.Errorf("parts %v, want text/plain and text/html", keys(parts))
	}
	for ct, want := range map[string]string{"text/plain": wantText, "text/html": wantHTML} {
		if got := strings.TrimRight(parts[ct], "\n"); got != strings.TrimRight(want, "\n") {
			t.Errorf("%s part differs from Render's:\n%s", ct, got)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
