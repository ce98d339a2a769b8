package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// Checkpoint file names under checkpoint.dir.
const (
	ServingCheckpoint = "serving.json"
	ShadowCheckpoint  = "shadow.json"
)

// artifactEnv is what an artifact loaded or written by the gateway must
// agree with: the config's encoder, reward and model ids.
type artifactEnv struct {
	enc       policy.EncoderSpec
	reward    decision.Reward
	catalogue []string
}

// encoderSpecOf is the spec of enc when it reports one (the FeatureEncoder
// does), else the config's.
func encoderSpecOf(enc policy.Encoder, c *Config) policy.EncoderSpec {
	if s, ok := enc.(interface{ Spec() policy.EncoderSpec }); ok {
		return s.Spec()
	}
	return c.EncoderSpec()
}

// loadArtifactPolicy reads a policy artifact and checks it against env.
func loadArtifactPolicy(reg *policy.Registry, path string, env artifactEnv) (policy.Policy, error) {
	a, err := artifact.Read(path)
	if err != nil {
		return nil, err
	}
	if err := a.Check(env.enc, env.reward, env.catalogue); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a.Policy(reg)
}

// buildPolicy builds the policy a PolicyConfig describes (role is
// "policy" or "shadow", for errors): an artifact file, else a spec.
func buildPolicy(reg *policy.Registry, role string, pc *PolicyConfig, env artifactEnv) (policy.Policy, error) {
	if pc.File != "" {
		p, err := loadArtifactPolicy(reg, pc.File, env)
		if err != nil {
			return nil, fmt.Errorf("%s.file: %w", role, err)
		}
		return p, applyBudget(p, role, pc)
	}
	p, err := reg.New(policy.Spec{Name: pc.Name, Params: policy.Params(pc.Params)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	return p, applyBudget(p, role, pc)
}

// applyBudget sets pc's budget block, if any, on p (role names the block
// in errors).
func applyBudget(p policy.Policy, role string, pc *PolicyConfig) error {
	if pc == nil || pc.Budget == nil || p == nil {
		return nil
	}
	b, ok := p.(policy.Budgeted)
	if !ok {
		return fmt.Errorf("%s.budget: policy %s enforces no spend budget (linear-router does)", role, p.Name())
	}
	if err := b.SetBudget(*pc.Budget); err != nil {
		return fmt.Errorf("%s.%w", role, err)
	}
	return nil
}

// restoreCheckpoint returns the policy saved in dir/name, or nil when
// there is none or it cannot be used: a corrupt checkpoint, or one written
// for another encoder, reward or catalogue, is a warning, never an error —
// the configured policy then starts fresh.
func (s *Server) restoreCheckpoint(name string, env artifactEnv) policy.Policy {
	dir := s.cfg.Checkpoint.Dir
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	p, err := loadArtifactPolicy(s.reg, path, env)
	if err != nil {
		// Keep the rejected file for inspection: the next checkpoint would
		// overwrite it.
		kept := fmt.Sprintf("%s.rejected-%d", path, s.now().Unix())
		if rerr := os.Rename(path, kept); rerr != nil {
			kept = "(not kept: " + rerr.Error() + ")"
		}
		s.log.Warn("checkpoint not restored: starting from the configured policy", "file", path, "kept_as", kept, "err", err)
		return nil
	}
	s.log.Info("restored policy from checkpoint", "file", path, "policy", p.Name())
	return p
}

// checkpointer saves the serving and shadow policies as artifacts.
type checkpointer struct {
	mu  sync.Mutex // one checkpoint at a time
	env artifactEnv
}

// Checkpoint writes the serving policy (and the shadow, when there is one)
// to checkpoint.dir as policy artifacts. It is a no-op without a
// checkpoint dir. Policies that cannot snapshot are skipped.
func (s *Server) Checkpoint() error {
	dir := s.cfg.Checkpoint.Dir
	if dir == "" || s.ckpt == nil {
		return nil
	}
	s.ckpt.mu.Lock()
	defer s.ckpt.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	var errs []error
	for _, x := range []struct {
		name string
		p    policy.Policy
	}{{ServingCheckpoint, s.core.Policy()}, {ShadowCheckpoint, s.core.ShadowPolicy()}} {
		if x.p == nil {
			// No shadow any more (removed by the admin API): a stale
			// shadow checkpoint would come back at the next start.
			if err := os.Remove(filepath.Join(dir, x.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("checkpoint %s: %w", x.name, err))
			}
			continue
		}
		if _, ok := x.p.(policy.Snapshotter); !ok {
			continue
		}
		a, err := artifact.New(x.p, s.ckpt.env.enc, s.ckpt.env.reward, s.ckpt.env.catalogue, artifact.Provenance{
			Source: "checkpoint", Rows: s.requestsSeen.Load(), Command: os.Args, Created: s.now().UTC(), CodeVersion: s.codeVer,
			Note: "gateway checkpoint (rows: requests routed by this process)"})
		if err == nil {
			err = artifact.Write(filepath.Join(dir, x.name), a)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("checkpoint %s: %w", x.name, err))
		}
	}
	return errors.Join(errs...)
}

// checkpointLoop checkpoints every checkpoint.every until ctx is done.
func (s *Server) checkpointTick(time.Time) {
	if err := s.Checkpoint(); err != nil {
		s.log.Warn("policy checkpoint failed", "err", err)
	}
}
