package decisionlog

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// The reader decodes decision rows itself from parquet-go's column values
// instead of going through GenericReader's reflection: about twice as
// fast, and low-cardinality strings (arms, policies, statuses, tags) are
// interned instead of allocated per row.

type fieldID uint8

const (
	fNone fieldID = iota
	fSchemaVersion
	fTime
	fRequestID
	fTenant
	fTask
	fPromptTokens
	fRequestTime
	fHourOfDay
	fTags
	fVector
	fCandidates
	fProbs
	fChosenIndex
	fChosenArm
	fChosenProb
	fPolicy
	fPolicyVersion
	fReason
	fShadowPolicy
	fShadowArm
	fShadowProb
	fShadowLoggedProb
	fAttArm
	fAttStatus
	fAttLatency
	fAttFallback
	fFinalArm
	fStatus
	fLatency
	fTTFT
	fTokensIn
	fTokensOut
	fCost
	fQuality
	fReward
	fRewardSource
)

// decodeColumns lists every leaf column of the decisions schema.
var decodeColumns = []struct {
	path string
	kind parquet.Kind
	id   fieldID
}{
	{"schema_version", parquet.Int32, fSchemaVersion},
	{"ts", parquet.Int64, fTime},
	{"request_id", parquet.ByteArray, fRequestID},
	{"tenant_hash", parquet.ByteArray, fTenant},
	{"task", parquet.ByteArray, fTask},
	{"prompt_tokens", parquet.Int64, fPromptTokens},
	{"request_ts", parquet.Int64, fRequestTime},
	{"hour_of_day", parquet.Int32, fHourOfDay},
	{"tags.list.element", parquet.ByteArray, fTags},
	{"vector.list.element", parquet.Double, fVector},
	{"candidates.list.element", parquet.ByteArray, fCandidates},
	{"probs.list.element", parquet.Double, fProbs},
	{"chosen_index", parquet.Int32, fChosenIndex},
	{"chosen_arm", parquet.ByteArray, fChosenArm},
	{"chosen_prob", parquet.Double, fChosenProb},
	{"policy", parquet.ByteArray, fPolicy},
	{"policy_version", parquet.ByteArray, fPolicyVersion},
	{"reason", parquet.ByteArray, fReason},
	{"shadow_policy", parquet.ByteArray, fShadowPolicy},
	{"shadow_arm", parquet.ByteArray, fShadowArm},
	{"shadow_prob", parquet.Double, fShadowProb},
	{"shadow_logged_prob", parquet.Double, fShadowLoggedProb},
	{"attempts.list.element.arm", parquet.ByteArray, fAttArm},
	{"attempts.list.element.status", parquet.ByteArray, fAttStatus},
	{"attempts.list.element.latency_ms", parquet.Double, fAttLatency},
	{"attempts.list.element.fallback", parquet.Int32, fAttFallback},
	{"final_arm", parquet.ByteArray, fFinalArm},
	{"status", parquet.ByteArray, fStatus},
	{"latency_ms", parquet.Double, fLatency},
	{"ttft_ms", parquet.Double, fTTFT},
	{"tokens_in", parquet.Int64, fTokensIn},
	{"tokens_out", parquet.Int64, fTokensOut},
	{"cost_usd", parquet.Double, fCost},
	{"quality", parquet.Double, fQuality},
	{"reward", parquet.Double, fReward},
	{"reward_source", parquet.ByteArray, fRewardSource},
}

// rowDecoder turns parquet.Row values of one file into Rows.
type rowDecoder struct {
	byColumn []fieldID // file column index → field
	attIdx   [4]int    // per attempts leaf: next element index in the row
	intern   map[string]string
}

// newRowDecoder maps the file's columns to fields by path, checking their
// physical types. Columns the file lacks (older schema versions) stay at
// their zero values; columns it has beyond these are ignored.
func newRowDecoder(s *parquet.Schema, intern map[string]string) (*rowDecoder, error) {
	d := &rowDecoder{byColumn: make([]fieldID, len(s.Columns())), intern: intern}
	for _, c := range decodeColumns {
		leaf, ok := s.Lookup(strings.Split(c.path, ".")...)
		if !ok {
			if c.id == fTime {
				return nil, fmt.Errorf("no ts column")
			}
			continue
		}
		if k := leaf.Node.Type().Kind(); k != c.kind {
			return nil, fmt.Errorf("column %s is %v, want %v", c.path, k, c.kind)
		}
		if leaf.ColumnIndex < 0 || leaf.ColumnIndex >= len(d.byColumn) {
			return nil, fmt.Errorf("column %s: index %d out of range", c.path, leaf.ColumnIndex)
		}
		d.byColumn[leaf.ColumnIndex] = c.id
	}
	return d, nil
}

// str returns b as a string, interned when small (low-cardinality values
// repeat from row to row). The map is bounded.
func (d *rowDecoder) str(b []byte) string {
	if len(b) > 64 {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) >= 1<<16 {
		clear(d.intern)
	}
	d.intern[s] = s
	return s
}

// decode fills r from one row's values, reusing r's slices.
func (d *rowDecoder) decode(vals parquet.Row, r *Row) {
	r.Tags, r.Vector, r.Candidates, r.Probs, r.Attempts = r.Tags[:0], r.Vector[:0], r.Candidates[:0], r.Probs[:0], r.Attempts[:0]
	r.RequestTime, r.ShadowPolicy, r.ShadowArm, r.ShadowProb, r.ShadowLoggedProb, r.Quality = nil, nil, nil, nil, nil, nil
	d.attIdx = [4]int{}
	for _, v := range vals {
		c := v.Column()
		if c < 0 || c >= len(d.byColumn) {
			continue
		}
		id := d.byColumn[c]
		if v.IsNull() {
			continue // null optional, or an empty list
		}
		switch id {
		case fSchemaVersion:
			r.SchemaVersion = v.Int32()
		case fTime:
			r.Time = v.Int64()
		case fRequestID:
			r.RequestID = string(v.ByteArray())
		case fTenant:
			r.Tenant = d.str(v.ByteArray())
		case fTask:
			r.Task = d.str(v.ByteArray())
		case fPromptTokens:
			r.PromptTokens = v.Int64()
		case fRequestTime:
			r.reqTime = v.Int64()
			r.RequestTime = &r.reqTime
		case fHourOfDay:
			r.HourOfDay = v.Int32()
		case fTags:
			r.Tags = append(r.Tags, d.str(v.ByteArray()))
		case fVector:
			r.Vector = append(r.Vector, v.Double())
		case fCandidates:
			r.Candidates = append(r.Candidates, d.str(v.ByteArray()))
		case fProbs:
			r.Probs = append(r.Probs, v.Double())
		case fChosenIndex:
			r.ChosenIndex = v.Int32()
		case fChosenArm:
			r.ChosenArm = d.str(v.ByteArray())
		case fChosenProb:
			r.ChosenProb = v.Double()
		case fPolicy:
			r.Policy = d.str(v.ByteArray())
		case fPolicyVersion:
			r.PolicyVersion = d.str(v.ByteArray())
		case fReason:
			r.Reason = d.str(v.ByteArray())
		case fShadowPolicy:
			r.shadowPolicy = d.str(v.ByteArray())
			r.ShadowPolicy = &r.shadowPolicy
		case fShadowArm:
			r.shadowArm = d.str(v.ByteArray())
			r.ShadowArm = &r.shadowArm
		case fShadowProb:
			r.shadowProb = v.Double()
			r.ShadowProb = &r.shadowProb
		case fShadowLoggedProb:
			r.shadowLoggedProb = v.Double()
			r.ShadowLoggedProb = &r.shadowLoggedProb
		case fAttArm:
			d.attempt(r, 0).Arm = d.str(v.ByteArray())
		case fAttStatus:
			d.attempt(r, 1).Status = d.str(v.ByteArray())
		case fAttLatency:
			d.attempt(r, 2).LatencyMS = v.Double()
		case fAttFallback:
			d.attempt(r, 3).Fallback = v.Int32()
		case fFinalArm:
			r.FinalArm = d.str(v.ByteArray())
		case fStatus:
			r.Status = d.str(v.ByteArray())
		case fLatency:
			r.LatencyMS = v.Double()
		case fTTFT:
			r.TTFTMS = v.Double()
		case fTokensIn:
			r.TokensIn = v.Int64()
		case fTokensOut:
			r.TokensOut = v.Int64()
		case fCost:
			r.Cost = v.Double()
		case fQuality:
			r.quality = v.Double()
			r.Quality = &r.quality
		case fReward:
			r.Reward = v.Double()
		case fRewardSource:
			r.RewardSource = d.str(v.ByteArray())
		}
	}
}

// attempt returns the next element of the row's attempts for leaf k
// (arm, status, latency, fallback), growing the list as needed.
func (d *rowDecoder) attempt(r *Row, k int) *AttemptRow {
	i := d.attIdx[k]
	d.attIdx[k]++
	for len(r.Attempts) <= i {
		r.Attempts = append(r.Attempts, AttemptRow{})
	}
	return &r.Attempts[i]
}

// readRowGroups decodes every row of pf into buf, batch by batch, calling
// fn with each batch; parquet-go panics become errors.
func readRowGroups(pf *parquet.File, buf []Row, intern map[string]string, fn func([]Row) bool) (bool, error) {
	d, err := newRowDecoder(pf.Schema(), intern)
	if err != nil {
		return true, err
	}
	vals := make([]parquet.Row, len(buf))
	for gi, rg := range pf.RowGroups() {
		var rows parquet.Rows
		if err := safely(func() error { rows = rg.Rows(); return nil }); err != nil {
			return true, fmt.Errorf("row group %d: %w", gi, err)
		}
		for {
			var n int
			err := safely(func() error {
				var err error
				n, err = rows.ReadRows(vals)
				for i := range vals[:n] {
					d.decode(vals[i], &buf[i])
				}
				return err
			})
			if n > 0 && !fn(buf[:n]) {
				safely(rows.Close)
				return false, nil
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				safely(rows.Close)
				return true, fmt.Errorf("row group %d: read rows: %w", gi, err)
			}
		}
		if err := safely(rows.Close); err != nil {
			return true, fmt.Errorf("row group %d: %w", gi, err)
		}
	}
	return true, nil
}
