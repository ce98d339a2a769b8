package fromlogs

import (
	"fmt"

	"github.com/routelab/routelab/decision"
)

// rowErr wraps err with the position and id of the row, as package replay
// names rows.
func rowErr(i int64, rec *decision.Record, err error) error {
	return fmt.Errorf("row %d (request %q): %w", i, rec.Request.ID, err)
}
