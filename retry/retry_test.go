package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

// clock is a test's own time: sleeping advances it at once.
type clock struct {
	t      time.Time
	slept  []time.Duration
	during func() // called in each sleep, before it returns
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time { return c.t }

func (c *clock) sleep(ctx context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	if c.during != nil {
		c.during()
	}
	return ctx.Err()
}

func (c *clock) option() Option { return withClock(c.now, c.sleep) }

// failing returns f failing with errs in turn, then succeeding, and the
// count of its calls.
func failing(errs ...error) (func(context.Context) error, *int) {
	n := 0
	return func(context.Context) error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

type marked struct {
	error
	transient bool
}

func (m marked) Transient() bool { return m.transient }
func (m marked) Unwrap() error   { return m.error }

type waitFor struct {
	error
	d time.Duration
}

func (w waitFor) RetryAfter() time.Duration { return w.d }
func (w waitFor) Unwrap() error             { return w.error }

var (
	errPassing   = marked{errors.New("503 Service Unavailable"), true}
	errPermanent = marked{errors.New("denied"), false}
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: 30 * time.Second}
	for attempt := range 200 {
		full := min(time.Second<<min(attempt, 5), 30*time.Second)
		for range 20 {
			if d := p.Backoff(attempt); d < full/2 || d > full {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
	if d := (Policy{}).Backoff(3); d != 0 {
		t.Errorf("no base: Backoff = %v, want 0", d)
	}
	if d := (Policy{Base: time.Hour}).Backoff(1000); d < Forever/2 {
		t.Errorf("no cap, attempt 1000: Backoff = %v, want the largest wait, not an overflow", d)
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	policy := Policy{Base: time.Second, Max: 4 * time.Second, Budget: time.Minute}
	for _, tc := range []struct {
		name      string
		policy    Policy
		errs      []error
		wantErr   error
		wantCalls int
		wantWaits []time.Duration // lower bounds of each wait
	}{
		{"success needs no retry", policy, nil, nil, 1, nil},
		{"transient, then success", policy, []error{errPassing, io.EOF}, nil, 3, []time.Duration{500 * time.Millisecond, time.Second}},
		{"permanent stops at once", policy, []error{errPermanent}, errPermanent, 1, nil},
		{"budget 0 tries once", Policy{Base: time.Second}, []error{errPassing}, errPassing, 1, nil},
		{"server's wait is a floor", policy, []error{waitFor{errPassing, 20 * time.Second}}, nil, 2, []time.Duration{20 * time.Second}},
		{"server's wait past the budget gives up at once", policy, []error{waitFor{errPassing, time.Hour}}, errPassing, 1, nil},
		{"budget spent", Policy{Base: 10 * time.Second, Max: 10 * time.Second, Budget: 30 * time.Second},
			[]error{errPassing, errPassing, errPassing, errPassing, errPassing, errPassing, errPassing}, errPassing, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			f, calls := failing(tc.errs...)
			var told []time.Duration
			err := Do(context.Background(), tc.policy, f, func(err error, wait time.Duration) { told = append(told, wait) }, clk.option())
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("Do = %v, want %v", err, tc.wantErr)
			}
			if tc.wantCalls > 0 && *calls != tc.wantCalls {
				t.Errorf("f called %d times, want %d", *calls, tc.wantCalls)
			}
			if fmt.Sprint(told) != fmt.Sprint(clk.slept) {
				t.Errorf("onRetry told %v, Do slept %v", told, clk.slept)
			}
			for i, least := range tc.wantWaits {
				if i >= len(told) || told[i] < least {
					t.Errorf("waits %v, want wait %d at least %v", told, i, least)
				}
			}
			// No try starts after the budget.
			var waited time.Duration
			for _, w := range clk.slept {
				waited += w
			}
			if waited > tc.policy.Budget {
				t.Errorf("tries started %v after the first, budget %v", waited, tc.policy.Budget)
			}
		})
	}
}

func TestDoStopsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	policy := Policy{Base: time.Second, Budget: Forever}

	// During a wait: the error says so and keeps the last failure.
	ctx, cancel := context.WithCancel(context.Background())
	clk := newClock()
	clk.during = cancel
	f, calls := failing(errPassing, errPassing, errPassing)
	err := Do(ctx, policy, f, nil, clk.option())
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errPassing) || *calls != 1 {
		t.Errorf("cancelled in a wait: %v after %d calls, want Canceled and the last failure after 1", err, *calls)
	}
	if Transient(err) {
		t.Errorf("Transient(%v) = true, want false: the caller gave up", err)
	}

	// During a try whose error is a timeout: the caller's deadline is
	// not retried.
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	calls2 := 0
	err = Do(ctx, policy, func(ctx context.Context) error {
		calls2++
		return &url.Error{Op: "Get", URL: "http://registry/v2/", Err: ctx.Err()}
	}, nil, newClock().option())
	if !errors.Is(err, context.DeadlineExceeded) || calls2 != 1 {
		t.Errorf("past the deadline: %v after %d calls, want DeadlineExceeded after 1", err, calls2)
	}
}

func TestWithClassifier(t *testing.T) {
	t.Parallel()
	onlyRefused := WithClassifier(func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) })
	f, calls := failing(syscall.ECONNREFUSED, io.EOF)
	err := Do(context.Background(), Policy{Base: time.Second, Budget: time.Minute}, f, nil, onlyRefused, newClock().option())
	if !errors.Is(err, io.EOF) || *calls != 2 {
		t.Errorf("Do = %v after %d calls, want EOF (not retried by this classifier) after 2", err, *calls)
	}
}

// timeoutError is a net.Error, as a transport's timeouts are.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestTransient(t *testing.T) {
	t.Parallel()
	opErr := func(err error) error {
		return &url.Error{Op: "Put", URL: "http://registry/v2/", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"EOF", io.EOF, true},
		{"wrapped unexpected EOF", fmt.Errorf("reading engine output: %w", io.ErrUnexpectedEOF), true},
		{"reset", opErr(syscall.ECONNRESET), true},
		{"refused", opErr(syscall.ECONNREFUSED), true},
		{"broken pipe", opErr(syscall.EPIPE), true},
		{"aborted", opErr(syscall.ECONNABORTED), true},
		{"timeout", &url.Error{Op: "Get", URL: "http://x/", Err: timeoutError{}}, true},
		{"os deadline", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true},
		{"host unknown", &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}, false},
		{"cancelled", &url.Error{Op: "Get", URL: "http://x/", Err: context.Canceled}, false},
		{"plain error", errors.New("x509: certificate signed by unknown authority"), false},
		// Words and digits of a message decide nothing.
		{"text of a passing error", errors.New("read: connection reset by peer; 503 Service Unavailable; EOF"), false},
		{"marked transient", fmt.Errorf("push: %w", errPassing), true},
		{"marked permanent wins over EOF", marked{io.EOF, false}, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestAfter(t *testing.T) {
	t.Parallel()
	if d, ok := After(fmt.Errorf("notify: %w", waitFor{errPassing, 7 * time.Second})); !ok || d != 7*time.Second {
		t.Errorf("After = %v, %v; want 7s, true", d, ok)
	}
	if d, ok := After(waitFor{errPassing, -time.Second}); !ok || d != 0 {
		t.Errorf("After of a negative wait = %v, %v; want 0, true", d, ok)
	}
	if _, ok := After(errPassing); ok {
		t.Error("After found a wait in an error that carries none")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"1e300", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	} {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
