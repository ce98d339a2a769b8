package gateway

import (
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/routelab/routelab/policy"
)

// PolicyReport answers GET /admin/policy: the serving (and shadow) policy
// and what the serving policy has learned — merged across replicas when
// state.redis shares its statistics.
type PolicyReport struct {
	// Name is the serving policy's registry name; Policy repeats it (the
	// field older clients read).
	Name string `json:"name"`
	policyInfo
	// Updates is the number of rewards the serving policy has learned from
	// (every replica's, as of the last merge, with state.redis); 0 for a
	// policy that keeps no per-arm statistics (Learns false).
	Updates float64 `json:"updates"`
	// Arms are the per-arm counts (and mean rewards, for the arm-table
	// policies), by id.
	Arms   []ArmReport `json:"arms"`
	Learns bool        `json:"learns"`
	// Shared describes state.redis; absent without it.
	Shared *SharedReport `json:"shared,omitempty"`
}

// ArmReport is one arm of PolicyReport.
type ArmReport struct {
	ID    string   `json:"id"`
	Count float64  `json:"count"`
	Mean  *float64 `json:"mean,omitempty"`
}

// SharedReport is the shared-state part of PolicyReport.
type SharedReport struct {
	// Redis is "up" or "down" (serving on local state).
	Redis string `json:"redis"`
	// Generation is the shared policy record's generation this replica runs.
	Generation string `json:"generation"`
	// StatsID names the serving policy's shared statistics; empty when the
	// policy's state cannot be merged (discounted, windowed, neural).
	StatsID string `json:"stats_id,omitempty"`
	// MergeAgeSeconds is the time since the last merge (-1: never).
	MergeAgeSeconds float64 `json:"merge_age_seconds"`
	// LocalChange names a policy change made here while Redis was
	// unreachable, to be shared when it is back.
	LocalChange string `json:"local_change,omitempty"`
}

func (s *Server) policyReport() PolicyReport {
	p := s.core.Policy()
	r := PolicyReport{Name: p.Name(), policyInfo: s.policyInfo(), Arms: []ArmReport{}}
	if st, ok := policy.StatsOf(p); ok {
		r.Learns = true
		r.Updates = st.Updates()
		for _, a := range st.Arms() {
			ar := ArmReport{ID: a.ID, Count: a.Count}
			if !math.IsNaN(a.Mean) {
				m := a.Mean
				ar.Mean = &m
			}
			r.Arms = append(r.Arms, ar)
		}
	}
	if sh := s.shared; sh != nil {
		sr := &SharedReport{Redis: "down", MergeAgeSeconds: sh.mergeAge(time.Now())}
		if sh.c.Up() {
			sr.Redis = "up"
		}
		sh.mu.Lock()
		sr.Generation, sr.LocalChange = sh.gen, sh.dirty
		if sync := sh.syncFor(p); sync != nil {
			sr.StatsID = sync.ID()
		}
		sh.mu.Unlock()
		r.Shared = sr
	}
	return r
}

// handleGetPolicy merges with Redis first (when it is reachable), so that
// the report is as fresh as the other replicas' last publish: at most one
// of their merge intervals old.
func (s *Server) handleGetPolicy(c *gin.Context) {
	if s.shared != nil && s.shared.c.Up() {
		s.syncShared(c.Request.Context())
	}
	c.JSON(http.StatusOK, s.policyReport())
}
