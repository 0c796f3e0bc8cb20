package web

import (
	"net/http"
	"strings"
	"testing"

	"nightshift/store"
)

// A run carried out by a Jenkins build links to that build's console on its
// page; a run that records no build, or one no reader could follow, links
// to none.
func TestRunPageLinksTheConsole(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for id, buildURL := range map[uint64]string{
		5: "https://jenkins.example.org/job/ci-images/77/",
		6: "javascript:alert(1)//",
	} {
		if err := f.db.UpdateRun(id, func(r *store.Run) error { r.BuildURL = buildURL; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path, want string
	}{
		{"/runs/5", `<dt>Jenkins build</dt><dd><a href="https://jenkins.example.org/job/ci-images/77/console">console</a></dd>`},
		{"/runs/6", ""},
		{"/runs/2", ""},
	} {
		rec := f.do(http.MethodGet, tc.path, "", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, rec.Code)
		}
		body := rec.Body.String()
		switch {
		case tc.want != "" && !strings.Contains(body, tc.want):
			t.Errorf("%s lacks %s", tc.path, tc.want)
		case tc.want == "" && strings.Contains(body, "Jenkins build"):
			t.Errorf("%s names a Jenkins build", tc.path)
		}
		if strings.Contains(body, "javascript:") || strings.Contains(body, "ZgotmplZ") {
			t.Errorf("%s: a build URL reached the page as it is", tc.path)
		}
	}
}
