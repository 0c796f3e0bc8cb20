package config

import "nightshift/problem"

// Problem and Problems are package problem's types under the names the
// configuration's callers use: a problem of the configuration, and all of
// them as one error.
type (
	Problem  = problem.Problem
	Problems = problem.List
)
