package durability

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

const (
	// scheduleEvery is the schedule's interval; its ticks are its multiples since the epoch.
	scheduleEvery = 2 * time.Second
	// scheduleBeforeKill and scheduleAfterKill bound how long the schedule fires
	// before the kill and after it (about 40 s in all).
	scheduleBeforeKill = 14 * time.Second
	scheduleAfterKill  = 24 * time.Second
	// deleteSlack: a tick due this long before the DELETE must have its run.
	deleteSlack = 2 * time.Second
)

// TestScheduleSurvivesKill: three `kowai serve` processes on MariaDB fire an `@every 2s`
// schedule created through the REST API. About 14 s after its first tick the node that
// holds the claim on a tick (claimed, run not yet started or schedule not yet advanced,
// read from claim_owner in the database) is killed with SIGKILL; the schedule fires for
// about 24 s more and is then deleted. From the database, every tick from the first to
// the stop (ticks due in the last 2 s before the DELETE may or may not have fired) must
// have exactly one run, with ID actors.ScheduleRunID(schedule, tick), and
// the owner must have no other run: the dead node's claim lapses and a survivor fires
// its tick, and no tick is fired twice into two runs.
func TestScheduleSurvivesKill(t *testing.T) {
	persisttest.MySQLDSN(t) // skip or fail before the build when MariaDB is not configured
	bin := clustertest.BuildBinary(t, "github.com/kowai/kowai/cmd/kowai")
	c := newCluster(t, bin, "automanaged", 3)
	c.start(c.nodes...)
	token := c.register(c.nodes[0], "scheduler@durability.test")
	db, err := persistence.Open(t.Context(), c.dbURL, persistence.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.SQL.Close() })

	status, raw, err := c.do(t.Context(), c.nodes[1], http.MethodPost, "/api/v1/workflows/schedules", token, "",
		map[string]any{"workflow": "intelligent-chat", "parameters": map[string]any{"message": "ping"}, "spec": "@every 2s"})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create schedule: %d %s %v", status, raw, err)
	}
	var created struct {
		ID         string    `json:"id"`
		OwnerID    string    `json:"owner_id"`
		NextFireAt time.Time `json:"next_fire_at"`
	}
	if err := json.Unmarshal(raw, &created); err != nil || created.ID == "" {
		t.Fatalf("create schedule: %s %v", raw, err)
	}
	first := created.NextFireAt.UTC()
	if first.IsZero() || !first.Equal(first.Truncate(scheduleEvery)) {
		t.Fatalf("first tick %v is not a multiple of %s", first, scheduleEvery)
	}

	// Kill the node holding a claim on a tick: poll the schedule's row until a claim
	// shows, then SIGKILL its owner (claim_owner starts with the node's cluster address).
	waitUntil(t, first.Add(scheduleBeforeKill))
	var victim *kowaiNode
	var claimedTick time.Time
	testenv.Eventually(t, 30*time.Second, func() error {
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			var owner string
			var next sql.NullTime
			err := db.SQL.QueryRowContext(t.Context(),
				"SELECT claim_owner, next_fire_at FROM workflow_schedules WHERE id = ?", created.ID).Scan(&owner, &next)
			if err != nil {
				return err
			}
			if owner == "" {
				continue
			}
			for _, n := range c.nodes {
				if strings.HasPrefix(owner, n.clusterAddr+" ") {
					victim, claimedTick = n, next.Time.UTC()
					c.kill(n)
					return nil
				}
			}
			return fmt.Errorf("claim owner %q is no node", owner)
		}
		return errors.New("no claim seen")
	})
	killed := time.Now()
	t.Logf("killed node %d (%s) with SIGKILL while it held the claim on tick %s", victim.index, victim.clusterAddr, claimedTick.Format(time.RFC3339))

	// Stop. Every tick up to deleteSlack before the DELETE must have fired by then (a
	// node looks once a second); a later one may have fired before the DELETE landed.
	waitUntil(t, killed.Add(scheduleAfterKill))
	deleted := time.Now().UTC()
	status, raw, err = c.do(t.Context(), c.live()[0], http.MethodDelete, "/api/v1/workflows/schedules/"+created.ID, token, "", nil)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("delete schedule: %d %s %v", status, raw, err)
	}
	required := deleted.Add(-deleteSlack)

	// A node that claimed a tick before the DELETE may still be starting its
	// run: wait until the run count holds for a few seconds before reading them.
	runsOf := func() (map[string]time.Time, error) {
		rows, err := db.SQL.QueryContext(t.Context(), "SELECT id, created_at FROM workflow_runs WHERE owner_id = ?", created.OwnerID)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]time.Time{}
		for rows.Next() {
			var id string
			var at time.Time
			if err := rows.Scan(&id, &at); err != nil {
				return nil, err
			}
			if _, dup := out[id]; dup {
				return nil, fmt.Errorf("run %s listed twice", id)
			}
			out[id] = at.UTC()
		}
		return out, rows.Err()
	}
	var runs map[string]time.Time
	steady, last := time.Time{}, -1
	testenv.Eventually(t, 30*time.Second, func() error {
		var err error
		if runs, err = runsOf(); err != nil {
			return err
		}
		if len(runs) != last {
			steady, last = time.Now(), len(runs)
		}
		if time.Since(steady) < 3*time.Second {
			return fmt.Errorf("%d runs, changed %s ago", len(runs), time.Since(steady))
		}
		return nil
	})

	total := len(runs)
	ticks, longest, longestTick := 0, time.Duration(0), time.Time{}
	for tick := first; !tick.After(deleted); tick = tick.Add(scheduleEvery) {
		id := actors.ScheduleRunID(created.ID, tick)
		at, ok := runs[id]
		delete(runs, id)
		switch {
		case !ok && tick.After(required):
			continue // not due long enough before the DELETE to be required
		case !ok:
			t.Errorf("tick %s has no run %s", tick.Format(time.RFC3339), id)
			continue
		}
		ticks++
		if gap := at.Sub(tick); gap > longest {
			longest, longestTick = gap, tick
		}
	}
	for id, at := range runs {
		t.Errorf("run %s (created %s) belongs to no tick of the schedule", id, at.Format(time.RFC3339Nano))
	}
	verdict := "one per tick, none other"
	if t.Failed() {
		verdict = "ticks missing or runs of no tick: see above"
	}
	report(t, fmt.Sprintf("durability %s: @every %s for %s (first tick %s, stopped before %s), node %d killed -9 holding the claim on tick %s; ticks=%d runs=%d (%s); longest tick-to-run-creation gap %s at tick %s",
		t.Name(), scheduleEvery, deleted.Sub(first).Round(time.Second), first.Format(time.TimeOnly), deleted.Format(time.TimeOnly),
		victim.index, claimedTick.Format(time.TimeOnly), ticks, total, verdict,
		longest.Round(time.Millisecond), longestTick.Format(time.TimeOnly)))
}

// waitUntil lets the schedule fire until at, or fails when the test ends first.
func waitUntil(t *testing.T, at time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(at))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
		t.Fatal("test ended while the schedule fired")
	}
}
