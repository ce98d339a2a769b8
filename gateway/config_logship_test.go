package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogShipConfig(t *testing.T) {
	const base = "providers: [{name: p, type: sim}]\nmodels: [{id: m, provider: p, sim: {}}]\n"
	c, err := ParseConfig([]byte(base + "log: {dir: /var/log/routelab, ship: {url: 's3://logs?region=eu-west-1&prefix=gw/', interval: 1m, delete_after_upload: true}}\n"))
	require.NoError(t, err)
	assert.Equal(t, LogShipConfig{URL: "s3://logs?region=eu-west-1&prefix=gw/", Interval: time.Minute, DeleteAfterUpload: true}, c.Log.Ship)

	for _, tc := range []struct{ name, yaml, want string }{
		{"no dir", "log: {dir: '', ship: {url: 'file:///tmp/b'}}\n", "log.ship.url"},
		{"not a url", "log: {dir: d, ship: {url: /tmp/b}}\n", "not a bucket URL"},
		{"scheme", "log: {dir: d, ship: {url: 'ftp://h/b'}}\n", `scheme "ftp"`},
		{"interval", "log: {dir: d, ship: {url: 'file:///b', interval: -1s}}\n", "log.ship.interval"},
		{"attempts", "log: {dir: d, ship: {url: 'file:///b', max_attempts: -1}}\n", "log.ship.max_attempts"},
		{"settings without url", "log: {dir: d, ship: {delete_after_upload: true}}\n", "log.ship: settings given but no url"},
		{"unknown key", "log: {dir: d, ship: {url: 'file:///b', bogus: 1}}\n", "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(base + tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
