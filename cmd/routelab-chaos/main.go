// Command routelab-chaos attacks a running routelab gateway the way
// issue 14 did — as a client and as an operator — and checks that each
// finding stays fixed. It is bounded (a few minutes on 2 cores) and
// loopback-only: it starts the real `routelab serve` binary (--bin) on
// production-like configurations with a switchable mock OpenAI upstream
// in this process, and prints one row per check:
//
//	test | expected | observed | PASS/FAIL
//
// It exits 1 when any check fails. `make chaos` builds the binary and
// runs it; --only REGEXP runs the matching tests, --keep keeps the
// temporary directory (configs, decision logs, access and audit logs).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// row is one line of the table.
type row struct {
	test, expected, observed string
	pass                     bool
}

// env is what every test gets.
type env struct {
	bin  string
	dir  string // this test's own directory
	mock *mock
}

type test struct {
	name string
	run  func(e *env) []row
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "routelab-chaos:", err)
		os.Exit(1)
	}
}

func run(args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("routelab-chaos", flag.ContinueOnError)
	fs.SetOutput(errOut)
	bin := fs.String("bin", "bin/routelab", "the routelab binary to attack")
	only := fs.String("only", "", "run only the tests whose name matches this regexp")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("--bin: %w (run make build first)", err)
	}
	var re *regexp.Regexp
	if *only != "" {
		if re, err = regexp.Compile(*only); err != nil {
			return fmt.Errorf("--only: %w", err)
		}
	}
	root, err := os.MkdirTemp("", "routelab-chaos-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(errOut, "keeping", root)
	} else {
		defer os.RemoveAll(root)
	}
	m, err := startMock()
	if err != nil {
		return fmt.Errorf("mock upstream: %w", err)
	}
	defer m.srv.Close()

	var rows []row
	start := time.Now()
	for _, t := range tests() {
		if re != nil && !re.MatchString(t.name) {
			continue
		}
		dir := filepath.Join(root, t.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, u := range []string{"u1", "u2", "u3", "bulk"} {
			m.set(u, "ok")
		}
		t0 := time.Now()
		fmt.Fprintf(errOut, "running %s ...\n", t.name)
		got := t.run(&env{bin: abs, dir: dir, mock: m})
		fmt.Fprintf(errOut, "  %s done in %.1fs\n", t.name, time.Since(t0).Seconds())
		rows = append(rows, got...)
	}
	w := tabwriter.NewWriter(out, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "test\t expected\t observed\t result")
	fails := 0
	for _, r := range rows {
		res := "PASS"
		if !r.pass {
			res, fails = "FAIL", fails+1
		}
		fmt.Fprintf(w, "%s\t %s\t %s\t %s\n", r.test, r.expected, oneLine(r.observed), res)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d checks, %d failed, %.0fs\n", len(rows), fails, time.Since(start).Seconds())
	if fails > 0 {
		return fmt.Errorf("%d of %d checks failed", fails, len(rows))
	}
	return nil
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// failed is the row of a test that could not run.
func failed(name, expected string, err error) []row {
	return []row{{test: name, expected: expected, observed: "error: " + err.Error()}}
}
