//go:build !unix

package decisionlog

import "os"

// Without flock, segments are not locked: recovery assumes every segment
// it finds belongs to a dead writer, so replicas must not share a root.
func lock(*os.File) error { return nil }

func tryLock(*os.File) (bool, error) { return true, nil }
