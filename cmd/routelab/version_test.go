package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, "routelab ") || !strings.Contains(got, "(commit ") {
		t.Fatalf("--version printed %q, want \"routelab VERSION (commit HASH, GO)\"", got)
	}
}
