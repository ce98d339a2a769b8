//go:build tools

// Package deps pins, in go.mod, the modules routelab's packages use (see
// ../shared/docs/DEPS.md for why each version). The build tag keeps it out of
// every build; `go mod tidy` still honours its imports.
package deps

import (
	_ "github.com/cenkalti/backoff/v5"
	_ "github.com/duckdb/duckdb-go/v2"
	_ "github.com/gin-gonic/gin"
	_ "github.com/openai/openai-go/v3"
	_ "github.com/parquet-go/parquet-go"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/sony/gobreaker/v2"
	_ "github.com/stretchr/testify/require"
	_ "github.com/tsenart/vegeta/v12/lib"
	_ "go.yaml.in/yaml/v3"
	_ "go4.org/unsafe/assume-no-moving-gc"
	_ "golang.org/x/time/rate"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
	_ "gorgonia.org/gorgonia"
	_ "gorgonia.org/tensor"
)
