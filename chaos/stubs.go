package main

import "context"

func notifyStorm(ctx context.Context, e *env) (string, []string) { return "todo", nil }
func killNine(ctx context.Context, e *env) (string, []string)    { return "todo", nil }
