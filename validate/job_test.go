package validate

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"nightshift/config"
	"nightshift/store"
	"nightshift/validate/jenkins/jenkinstest"
)

// newJob is the job "ci/test-images" of a fake Jenkins whose builds end
// with result (or hang), for a run tagged t.
func newJob(t *testing.T, result string, hang bool, pass ...string) (*Job, *jenkinstest.Server) {
	t.Helper()
	srv := jenkinstest.New(jenkinstest.Config{User: "bot", Token: "s3cret", Crumbs: true, Jobs: []jenkinstest.Job{{
		Path:   "ci/test-images",
		Params: map[string]string{"base_param": "", "cpu_param": "", "NIGHTLY_TAG": ""},
		Result: result, Hang: hang, Duration: 20 * time.Millisecond,
		Console: "Started by remote host\nrunning tests\nFinished: " + result + "\n",
	}}})
	t.Cleanup(srv.Close)
	cfg := config.Jenkins{
		Enabled: true, URL: srv.URL, Job: "ci/test-images", User: "bot", Token: "s3cret",
		Parameter: "{{.Name}}_param", Parameters: map[string]string{"NIGHTLY_TAG": "{{.Tag}}"},
		Timeout: config.Duration{Duration: time.Minute}, Poll: config.Duration{Duration: 10 * time.Millisecond},
		Pass: append([]string{"SUCCESS"}, pass...),
	}
	data := config.NewTemplateData(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC), "1a2b3c4d5e6f")
	data.Tag = "t"
	j := NewJob(cfg, data, nil)
	j.Client.HTTP = srv.Client()
	return j, srv
}

var refs = map[string]string{"base": "reg/ns/base:t", "cpu": "reg/ns/cpu:t"}

func TestJobRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		result string
		pass   []string
		want   store.Status
	}{
		{"SUCCESS", nil, store.Succeeded},
		{"FAILURE", nil, store.Failed},
		{"UNSTABLE", nil, store.Failed},
		{"UNSTABLE", []string{"UNSTABLE"}, store.Succeeded},
		{"ABORTED", nil, store.Failed},
	} {
		t.Run(tc.result+"/"+strings.Join(tc.pass, ","), func(t *testing.T) {
			t.Parallel()
			j, srv := newJob(t, tc.result, false, tc.pass...)
			var updates []store.JenkinsBuild
			b := j.Run(t.Context(), refs, func(b store.JenkinsBuild) { updates = append(updates, b) })
			if b.Status != tc.want || b.Result != tc.result || b.Number != 1 || !strings.Contains(b.URL, "/job/ci/job/test-images/1/") || b.Finished == nil {
				t.Errorf("build = %+v, want %s with its number and URL", b, tc.want)
			}
			if len(b.Console) == 0 || b.Console[len(b.Console)-1] != "Finished: "+tc.result {
				t.Errorf("console tail = %q", b.Console)
			}
			want := map[string]string{"base_param": "reg/ns/base:t", "cpu_param": "reg/ns/cpu:t", "NIGHTLY_TAG": "t"}
			builds := srv.Builds("ci/test-images")
			if len(builds) != 1 || !maps.Equal(builds[0].Params, want) || !maps.Equal(b.Params, want) {
				t.Errorf("Jenkins got %+v, record has %v; want the refs and the tag %v", builds, b.Params, want)
			}
			if len(updates) != 1 || updates[0].Status != store.Running {
				t.Errorf("updates = %+v, want one while running", updates)
			}
		})
	}
}

func TestJobTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		j, srv := newJob(t, "SUCCESS", true)
		j.Config.Timeout.Duration = 200 * time.Millisecond
		b := j.Run(t.Context(), refs, func(store.JenkinsBuild) {})
		if b.Status != store.Failed || !strings.Contains(b.Error, "no result within validate.jenkins.timeout (200ms)") {
			t.Errorf("build = %+v, want failed for the timeout", b)
		}
		if builds := srv.Builds("ci/test-images"); len(builds) != 1 || !builds[0].Stopped {
			t.Errorf("builds = %+v, want the hanging build stopped", builds)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		j, srv := newJob(t, "SUCCESS", true)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(200*time.Millisecond, cancel)
		b := j.Run(ctx, refs, func(store.JenkinsBuild) {})
		if b.Status != store.Interrupted || !strings.Contains(b.Error, "cancelled") {
			t.Errorf("build = %+v, want interrupted", b)
		}
		if builds := srv.Builds("ci/test-images"); len(builds) != 1 || !builds[0].Stopped {
			t.Errorf("builds = %+v, want the build stopped", builds)
		}
	})
	t.Run("no such job", func(t *testing.T) {
		t.Parallel()
		j, _ := newJob(t, "SUCCESS", false)
		j.Config.Job = "ci/missing"
		b := j.Run(t.Context(), refs, func(store.JenkinsBuild) {})
		if b.Status != store.Failed || !strings.Contains(b.Error, "404") {
			t.Errorf("build = %+v, want failed with Jenkins' 404", b)
		}
	})
}
