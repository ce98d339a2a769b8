package offline

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
)

// TimeSplit reads every record of src into memory, orders them by time,
// and splits them at the frac quantile: the earlier rows train, the later
// ones test. It is the honest way to evaluate a learning policy off-policy
// on one log: train on the past (Train), evaluate frozen on the future
// (replay.Evaluate on test), so no row is both learned from and evaluated
// on. Rows with equal times stay on one side. frac must be in (0,1); both
// sides must get rows.
func TimeSplit(ctx context.Context, src replay.Source, frac float64) (train, test replay.Records, cut time.Time, err error) {
	if !(frac > 0 && frac < 1) || math.IsNaN(frac) {
		return nil, nil, cut, fmt.Errorf("time split: fraction %v must be in (0,1)", frac)
	}
	var all replay.Records
	err = src.Scan(ctx, func(rec *decision.Record) error {
		all = append(all, rec.Clone())
		return nil
	})
	if err != nil {
		return nil, nil, cut, err
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	k := int(frac * float64(len(all)))
	for k > 0 && k < len(all) && all[k].Time.Equal(all[k-1].Time) {
		k++ // keep rows of one instant together
	}
	if k <= 0 || k >= len(all) {
		return nil, nil, cut, fmt.Errorf("time split: %d rows cannot be split at %v into two non-empty parts", len(all), frac)
	}
	return all[:k], all[k:], all[k].Time, nil
}
