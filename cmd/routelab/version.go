package main

import (
	"fmt"
	"runtime/debug"
)

// version and commit are stamped by the Makefile's -ldflags -X; when they
// are not (go run, go install), versionString falls back to the build
// information the Go toolchain records.
var (
	version = ""
	commit  = ""
)

// versionString is what `routelab --version` prints: the module version
// and the VCS commit (with "+dirty" for a modified work tree).
func versionString() string {
	v, c, dirty := version, commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.modified":
				dirty = dirty || s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	} else if dirty && commit == "" {
		c += "+dirty"
	}
	return fmt.Sprintf("routelab %s (commit %s, %s)", v, c, goVersion())
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "go?"
}
