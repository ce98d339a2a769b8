#!/usr/bin/env bash
# Regenerates the gRPC API's Go code from proto/ (make proto). The output
# is committed; CI does not run this. protoc comes from Debian's
# protobuf-compiler package (installed when missing), the Go plugins are
# installed at pinned versions into bin/tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
if ! command -v protoc >/dev/null; then
	apt-get update && apt-get install -y protobuf-compiler
fi
export GOBIN="$PWD/bin/tools"
go install "$PROTOC_GEN_GO"
go install "$PROTOC_GEN_GO_GRPC"
export PATH="$GOBIN:$PATH"
M=github.com/routelab/routelab
protoc -I proto \
	--go_out=. --go_opt=module=$M \
	--go-grpc_out=. --go-grpc_opt=module=$M \
	proto/routelab/v1/chat.proto
echo "generated gateway/grpcapi/routelabv1 with $(protoc --version)"
