package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/grpcapi"
)

func newServeCmd() *cobra.Command {
	var cfgPath, listen, logDir string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the OpenAI-compatible routing gateway",
		Long: `Run the gateway. Without --config it uses the embedded development
configuration: simulated models that stream in real time, policy thompson,
no API key, decisions logged to ./data/decisions. See docs/config.md.
Chat is served over REST (POST /v1/chat/completions), a WebSocket
(GET /v1/ws) and, when the config sets grpc.listen, gRPC
(routelab.v1.Chat); see docs/transports.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			cfg, err := gateway.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			if cmd.Flags().Changed("log-dir") {
				cfg.Log.Dir = logDir
			}
			return serve(cmd, cfg, cfgPath, log)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "YAML config file (default: the embedded development config)")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address, overrides the config's listen (embedded default 127.0.0.1:8080)")
	cmd.Flags().StringVar(&logDir, "log-dir", "", "decision log root, overrides the config's log.dir (\"\" disables logging)")
	return cmd
}

// feedbackLog adapts a decisionlog.FeedbackWriter to gateway.FeedbackLogger.
type feedbackLog struct{ w *decisionlog.FeedbackWriter }

func (f feedbackLog) LogFeedback(id string, at time.Time, reward, quality *float64, source string) error {
	fb := decisionlog.Feedback{RequestID: id, Time: at, Source: source}
	if reward != nil {
		fb.Reward, fb.HasReward = *reward, true
	}
	if quality != nil {
		fb.Quality, fb.HasQuality = *quality, true
	}
	return f.w.Log(&fb)
}

func serve(cmd *cobra.Command, cfg *gateway.Config, cfgPath string, log *slog.Logger) (err error) {
	opts := gateway.Opts{Config: cfg, Registry: newRegistry(), Logger: log, CodeVersion: versionString()}
	// Registered before the log's Close: runs after it, shipping its last files.
	stopShip, shipMetrics, err := startLogShip(cfg, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopShip()) }()
	opts.Collectors = shipMetrics
	if cfg.Log.Dir != "" {
		salt, err := cfg.TenantSalt()
		if err != nil {
			return fmt.Errorf("decision log %s: %w", cfg.Log.Dir, err)
		}
		wo := decisionlog.WriterOpts{Root: cfg.Log.Dir, TenantSalt: salt, MaxMemoryRows: cfg.Log.MaxMemoryRows, MaxFileRows: int64(cfg.Log.RotateRows), MaxFileAge: cfg.Log.RotateEvery,
			FlushInterval: cfg.Log.FlushInterval, RowGroupRows: int64(cfg.Log.RowGroupRows)}
		if q := cfg.Log.QueueSize; q > 0 {
			// queue_size is in rows; the writer counts batches.
			wo.BatchRows = min(decisionlog.DefaultBatchRows, max(1, q/4))
			wo.QueueBatches = max(2, (q+wo.BatchRows-1)/wo.BatchRows)
		}
		dw, err := decisionlog.NewWriter(wo)
		if err != nil {
			return fmt.Errorf("open decision log %s: %w", cfg.Log.Dir, err)
		}
		fw, err := decisionlog.NewFeedbackWriter(wo)
		if err != nil {
			_ = dw.Close()
			return fmt.Errorf("open feedback log %s: %w", cfg.Log.Dir, err)
		}
		defer func() {
			// Flush the log after the server has drained.
			err = errors.Join(err, dw.Close(), fw.Close())
			st := dw.Stats()
			log.Info("decision log closed", "dir", cfg.Log.Dir, "committed", st.Committed, "dropped", st.Dropped, "files", st.Files)
		}()
		opts.Sink = dw
		opts.SinkStats = func() (int, uint64) { st := dw.Stats(); return st.QueueDepth, st.Dropped }
		opts.Feedback = feedbackLog{fw}
	} else {
		log.Warn("decision logging disabled (log.dir is empty)")
	}
	srv, err := gateway.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.GRPC.Listen != "" {
		g, err := grpcapi.New(grpcapi.Opts{Gateway: srv, Listen: cfg.GRPC.Listen, Logger: log})
		if err != nil {
			_ = ln.Close()
			return err
		}
		srv.Attach(g) // Serve runs and drains it
		log.Info("routelab gRPC API listening", "addr", g.Addr().String())
	}
	src := cfgPath
	if src == "" {
		src = "embedded default"
	}
	if len(cfg.Auth.Keys) == 0 && cfg.Auth.JWT == nil {
		log.Warn("no API key required: anyone who can reach this port can use the gateway (development mode)")
	}
	if cfg.Auth.AdminTokenSHA256 == "" && len(cfg.Auth.Keys) == 0 && cfg.Auth.JWT == nil {
		log.Warn("no admin token: /admin/* is open (development mode)")
	}
	models := make([]string, len(cfg.Models))
	for i, m := range cfg.Models {
		models[i] = m.ID
	}
	if cfg.Auth.TrustTenantHeader {
		log.Warn("auth.trust_tenant_header: every key may name its requests' tenant (X-Routelab-Tenant), so per-tenant limits hold only per key")
	}
	log.Info("routelab gateway listening", "addr", ln.Addr().String(), "config", src, "mode", cfg.Mode,
		"policy", cfg.Policy.Name, "models", strings.Join(models, ","), "decision_log", cfg.Log.Dir,
		"max_connections", cfg.Server.MaxConnections, "max_inflight", cfg.Server.MaxInFlight,
		"read_timeout", cfg.Server.ReadTimeout, "write_timeout", cfg.Server.WriteTimeout, "tls", cfg.TLS != nil)
	host := ln.Addr().String()
	if h, port, err := net.SplitHostPort(host); err == nil && (h == "::" || h == "0.0.0.0" || h == "") {
		host = "localhost:" + port
	}
	auth := ""
	if len(cfg.Auth.Keys) > 0 {
		auth = ` -H "Authorization: Bearer $ROUTELAB_KEY"`
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "\nTry it:\n  curl -s %s://%s/v1/chat/completions%s -H 'Content-Type: application/json' \\\n    -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Write a haiku about routing\"}]}'\n\n",
		scheme, host, auth, cfg.Aliases[0])
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("gateway stopped")
	return nil
}
