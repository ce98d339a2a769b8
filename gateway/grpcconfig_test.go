package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGRPCConfig(t *testing.T) {
	const base = "providers: [{name: p, type: sim}]\nmodels: [{id: m, provider: p, sim: {}}]\n"
	cfg, err := ParseConfig([]byte(base))
	require.NoError(t, err)
	assert.Empty(t, cfg.GRPC.Listen, "off by default")
	cfg, err = ParseConfig([]byte(base + "grpc: {listen: \"127.0.0.1:9090\"}\n"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9090", cfg.GRPC.Listen)
	for _, bad := range []string{"9090", "localhost"} {
		_, err = ParseConfig([]byte(base + "grpc: {listen: \"" + bad + "\"}\n"))
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "grpc.listen: \""+bad+"\"")
	}
	_, err = ParseConfig([]byte(base + "grpc: {port: 1}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "port")
}
