package notify

import (
	"testing"

	"nightshift/store"
)

func TestHeadline(t *testing.T) {
	t.Parallel()
	validated := &store.Validation{Status: store.Succeeded}
	failedTests := &store.Validation{Status: store.Failed}
	for _, tc := range []struct {
		name string
		s    Summary
		want string
	}{
		{"rebuild", Summary{Event: EventFailure, Run: store.Run{Tag: "t", Status: store.Failed, Planned: []string{"a", "b", "c"},
			Images: []store.ImageResult{{Name: "a", Status: store.Succeeded}, {Name: "b", Status: store.Failed}}}},
			"failed: 1 of 3 images built (t)"},
		{"rebuild with validation", Summary{Event: EventFailure, Run: store.Run{Tag: "t", Status: store.Failed, Planned: []string{"a", "b", "c"},
			Images: []store.ImageResult{
				{Name: "a", Status: store.Succeeded, Digest: "sha256:a", Validation: validated},
				{Name: "b", Status: store.Failed, Digest: "sha256:b", Validation: failedTests},
				{Name: "c", Status: store.Failed},
			}}},
			"failed: 2 of 3 images built, 1 validated (t)"},
		{"validation run fixed", Summary{Event: EventFixed, Run: store.Run{Tag: "t", Kind: store.KindValidate, Status: store.Succeeded, Planned: []string{"a"},
			Images: []store.ImageResult{{Name: "a", Status: store.Succeeded, Digest: "sha256:a", Validation: validated}}}},
			"fixed: 1 of 1 images validated (t)"},
	} {
		if got := tc.s.Headline(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
