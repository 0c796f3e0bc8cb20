package config

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ImageRepository is the repository of the image called image under
// prefix, a registry host with an optional repository path ("quay.io/jupyter",
// "registry.example.org:5000/ci", "docker.io"), as Docker reads it:
// "docker.io/python" is index.docker.io/library/python. Comparing the Name of
// two repositories so made compares what Docker would pull.
func ImageRepository(prefix, image string) (name.Repository, error) {
	return name.NewRepository(prefix + "/" + image)
}

// published checks staging.published: each entry is a registry host with
// an optional repository path, with no tag, digest or scheme.
func (l *loader) published(s *Staging) {
	for i, p := range s.Published {
		if msg := publishedProblem(p); msg != "" {
			l.problem("staging.published", fmt.Sprintf("entry %d, %q, %s", i+1, p, msg))
		}
	}
}

func publishedProblem(prefix string) string {
	const want = `write the registry host and the repository path the stack's images are published under, e.g. "quay.io/jupyter"`
	switch {
	case prefix == "":
		return "is empty: " + want
	case strings.Contains(prefix, "://"):
		return "has a scheme: remove it and " + want
	}
	if repo, err := ImageRepository(prefix, "image"); err == nil && validNamespace(repo.RepositoryStr()) {
		return ""
	}
	// An image reference is the likeliest mistake; say what to drop.
	if ref, err := name.ParseReference(prefix, name.WithDefaultTag("")); err == nil {
		switch r := ref.(type) {
		case name.Digest:
			return "names a digest: write the repository path alone, which stands for every tag and digest"
		case name.Tag:
			if r.TagStr() != "" {
				return fmt.Sprintf("names a tag (%s): write the repository path alone, which stands for every tag and digest", r.TagStr())
			}
		}
	}
	return "is not a registry host and repository path: " + want
}
