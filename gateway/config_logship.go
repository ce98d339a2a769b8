package gateway

import (
	"fmt"
	"strings"
	"time"
)

// LogShipConfig is log.ship: finished decision-log files uploaded to an
// object store (package logship; docs/scale-out.md).
type LogShipConfig struct {
	// URL is the bucket, with any prefix: s3://bucket?region=R&prefix=P/,
	// gs://bucket?prefix=P/, azblob://container?prefix=P/ or
	// file:///dir. "" disables shipping.
	URL string `yaml:"url"`
	// Interval between shipping passes (default 30s).
	Interval time.Duration `yaml:"interval"`
	// DeleteAfterUpload removes each local file once its upload is
	// verified (size and MD5) and recorded in <log.dir>/_ship/manifest.jsonl.
	DeleteAfterUpload bool `yaml:"delete_after_upload"`
	// MaxAttempts per file and pass (default 5), with exponential backoff
	// from 500ms up to MaxBackoff (default 30s).
	MaxAttempts int           `yaml:"max_attempts"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
}

// validateShip checks log.ship.
func (l *LogConfig) validateShip() error {
	s := l.Ship
	if s.URL == "" {
		if s.Interval != 0 || s.DeleteAfterUpload || s.MaxAttempts != 0 || s.MaxBackoff != 0 {
			return fmt.Errorf("log.ship: settings given but no url")
		}
		return nil
	}
	scheme, rest, ok := strings.Cut(s.URL, "://")
	switch {
	case l.Dir == "":
		return fmt.Errorf("log.ship.url %q: needs log.dir (shipping uploads the decision log's files)", s.URL)
	case !ok || rest == "":
		return fmt.Errorf("log.ship.url %q: not a bucket URL (s3://, gs://, azblob://, file://)", s.URL)
	case scheme != "s3" && scheme != "gs" && scheme != "azblob" && scheme != "file":
		return fmt.Errorf("log.ship.url %q: scheme %q not supported (s3, gs, azblob, file)", s.URL, scheme)
	case s.Interval < 0:
		return fmt.Errorf("log.ship.interval: %v must be >= 0", s.Interval)
	case s.MaxAttempts < 0:
		return fmt.Errorf("log.ship.max_attempts: %d must be >= 0", s.MaxAttempts)
	case s.MaxBackoff < 0:
		return fmt.Errorf("log.ship.max_backoff: %v must be >= 0", s.MaxBackoff)
	}
	return nil
}
