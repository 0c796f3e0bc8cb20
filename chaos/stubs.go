package main

import "context"

func badInput(ctx context.Context, e *env) (string, []string)    { return "todo", nil }
func notifyStorm(ctx context.Context, e *env) (string, []string) { return "todo", nil }
func killNine(ctx context.Context, e *env) (string, []string)    { return "todo", nil }
