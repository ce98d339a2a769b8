package gateway

import (
	"fmt"
	"net"
)

// GRPCConfig is the `grpc:` block: the gRPC API (package
// gateway/grpcapi), served beside the HTTP listener by `routelab serve`.
type GRPCConfig struct {
	// Listen is the TCP address of the gRPC API ("127.0.0.1:9090",
	// ":9090"); empty (the default) turns the API off.
	Listen string `yaml:"listen"`
}

func (g *GRPCConfig) validate() error {
	if g.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(g.Listen); err != nil {
		return fmt.Errorf("grpc.listen: %q is not host:port: %w", g.Listen, err)
	}
	return nil
}
