package experiments

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/routelab/routelab/internal/atomicfile"
)

// Output file names inside the directory Write fills.
const (
	FileReportMD   = "report.md"
	FileReportHTML = "report.html"
	FileCells      = "cells.parquet"
	FileWindows    = "windows.parquet"
	FileSpec       = "spec.yaml"
	DirFigures     = "figures"
)

// Write analyses r and writes the experiment's outputs to dir (created if
// needed): spec.yaml (the effective spec, rerunnable), cells.parquet (one
// row per cell), windows.parquet (one row per window per cell),
// figures/*.svg, report.md and report.html (self-contained, figures
// inline). Each file is written to a temporary name, synced and renamed, so
// an interrupted Write never leaves a truncated file under a final name.
// It returns the analysis it reported.
func Write(dir string, r *Results) (*Analysis, error) {
	a, err := Analyze(r)
	if err != nil {
		return nil, err
	}
	var figs []Figure
	if r.Spec.Report.plots() {
		if figs, err = Figures(a); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write experiment output: %w", err)
	}
	specYAML, err := r.Spec.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, FileSpec), specYAML); err != nil {
		return nil, err
	}
	if err := writeParquet(filepath.Join(dir, FileCells), r.CellRows()); err != nil {
		return nil, err
	}
	if err := writeParquet(filepath.Join(dir, FileWindows), r.WindowRows()); err != nil {
		return nil, err
	}
	if len(figs) > 0 {
		fd := filepath.Join(dir, DirFigures)
		if err := os.MkdirAll(fd, 0o755); err != nil {
			return nil, fmt.Errorf("write experiment output: %w", err)
		}
		for _, f := range figs {
			if err := writeFileAtomic(filepath.Join(fd, f.Name), f.SVG); err != nil {
				return nil, err
			}
		}
	}
	if err := writeWith(filepath.Join(dir, FileReportMD), func(w io.Writer) error { return WriteMarkdown(w, r, a, figs) }); err != nil {
		return nil, err
	}
	if err := writeWith(filepath.Join(dir, FileReportHTML), func(w io.Writer) error { return WriteHTML(w, r, a, figs) }); err != nil {
		return nil, err
	}
	return a, nil
}

func writeWith(path string, fill func(io.Writer) error) error {
	var b bytes.Buffer
	if err := fill(&b); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, b.Bytes())
}

// writeFileAtomic writes data to path+".tmp", fsyncs and renames it.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
