package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// AgentTurn is one finished turn of an agent: its reply (role assistant) or its
// recorded failure (role system), with the variant that ran it.
type AgentTurn struct {
	Variant string
	Failed  bool
	// Latency is from the user's message to the reply or failure.
	Latency          time.Duration
	PromptTokens     int64
	CompletionTokens int64
	CostUSD          float64
}

// VariantFeedback counts the ratings of an agent's replies by variant.
type VariantFeedback struct {
	Variant  string
	Up, Down int64
}

// Stats reads what agent statistics are computed from.
type Stats interface {
	// AgentTurns returns the turns of agentID's conversations that ended at or after
	// since, at most limit of them (the newest).
	AgentTurns(ctx context.Context, agentID string, since time.Time, limit int) ([]AgentTurn, error)
	// AgentFeedback counts the ratings of agentID's replies made at or after since.
	AgentFeedback(ctx context.Context, agentID string, since time.Time) ([]VariantFeedback, error)
}

// StatsStore implements Stats on a DB.
type StatsStore struct{ db *DB }

var _ Stats = (*StatsStore)(nil)

// NewStatsStore returns the statistics reader of db.
func NewStatsStore(db *DB) *StatsStore { return &StatsStore{db: db} }

// AgentTurns implements Stats. A turn's user message is the one just before its
// reply: a session runs its turns one at a time.
func (s *StatsStore) AgentTurns(ctx context.Context, agentID string, since time.Time, limit int) ([]AgentTurn, error) {
	q := s.db.Goqu.From(goqu.T("conversations").As("c")).Prepared(true).
		Join(goqu.T("messages").As("m"), goqu.On(goqu.I("m.conversation_id").Eq(goqu.I("c.id")))).
		Join(goqu.T("messages").As("u"), goqu.On(goqu.I("u.conversation_id").Eq(goqu.I("m.conversation_id")),
			goqu.I("u.seq").Eq(goqu.L("? - 1", goqu.I("m.seq"))))).
		Select("m.variant", "m.role", "m.metadata", "m.created_at", "u.created_at").
		Where(goqu.I("c.agent_id").Eq(agentID), goqu.I("m.created_at").Gte(utc(since)),
			goqu.I("m.role").In("assistant", "system"), goqu.I("u.role").Eq("user")).
		Order(goqu.I("m.created_at").Desc()).Limit(uint(limit))
	turns, err := scanAll(ctx, q, func(r scanner) (AgentTurn, error) {
		var (
			t        AgentTurn
			role     string
			metadata []byte
			end, beg time.Time
		)
		if err := r.Scan(&t.Variant, &role, &metadata, &end, &beg); err != nil {
			return t, err
		}
		t.Failed, t.Latency = role == "system", end.Sub(beg)
		if len(metadata) > 0 {
			var meta struct {
				Usage struct {
					PromptTokens     int64   `json:"prompt_tokens"`
					CompletionTokens int64   `json:"completion_tokens"`
					CostUSD          float64 `json:"cost_usd"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(metadata, &meta); err != nil {
				return t, fmt.Errorf("decode message metadata: %w", err)
			}
			t.PromptTokens, t.CompletionTokens, t.CostUSD = meta.Usage.PromptTokens, meta.Usage.CompletionTokens, meta.Usage.CostUSD
		}
		return t, nil
	})
	return turns, wrap(err, "turns of agent %s", agentID)
}

// AgentFeedback implements Stats.
func (s *StatsStore) AgentFeedback(ctx context.Context, agentID string, since time.Time) ([]VariantFeedback, error) {
	q := s.db.Goqu.From(goqu.T("feedback").As("f")).Prepared(true).
		Join(goqu.T("messages").As("m"), goqu.On(goqu.I("m.id").Eq(goqu.I("f.message_id")))).
		Join(goqu.T("conversations").As("c"), goqu.On(goqu.I("c.id").Eq(goqu.I("m.conversation_id")))).
		Select("m.variant",
			goqu.COALESCE(goqu.SUM(goqu.L("CASE WHEN ? > 0 THEN 1 ELSE 0 END", goqu.I("f.rating"))), 0),
			goqu.COALESCE(goqu.SUM(goqu.L("CASE WHEN ? < 0 THEN 1 ELSE 0 END", goqu.I("f.rating"))), 0)).
		Where(goqu.I("c.agent_id").Eq(agentID), goqu.I("f.created_at").Gte(utc(since))).
		GroupBy("m.variant").Order(goqu.I("m.variant").Asc())
	out, err := scanAll(ctx, q, func(r scanner) (VariantFeedback, error) {
		var v VariantFeedback
		return v, r.Scan(&v.Variant, &v.Up, &v.Down)
	})
	return out, wrap(err, "feedback on agent %s", agentID)
}
