package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// New returns a client of the engine named by DOCKER_HOST (or the default
// socket) without reaching it yet: Ping says whether it answers.
func New() (*Engine, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	return &Engine{c: c}, nil
}

// Ping checks that the engine answers, agreeing on the API version.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("docker engine at %s: %w", e.c.DaemonHost(), err)
	}
	return nil
}
