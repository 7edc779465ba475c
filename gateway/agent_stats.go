package gateway

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// Bounds of GET /api/v1/agents/{id}/stats.
const (
	defaultStatsDays = 7
	maxStatsDays     = 90
	// maxStatsTurns is the most turns one answer reads (the newest); the answer
	// says when the window held more.
	maxStatsTurns = 100_000
	// z95 is the standard normal quantile of a two-sided 95% interval.
	z95 = 1.959963984540054
)

// feedbackStats are the ratings of a variant's replies.
type feedbackStats struct {
	Ratings int64 `json:"ratings"`
	Up      int64 `json:"up"`
	Down    int64 `json:"down"`
	// Mean and its interval are null without ratings.
	Mean   *float64 `json:"mean" doc:"mean rating from -1 (all thumbs down) to 1 (all up); null without ratings"`
	CILow  *float64 `json:"ci_low" doc:"lower end of the 95% Wilson score interval of the mean, on the same -1..1 scale"`
	CIHigh *float64 `json:"ci_high" doc:"upper end of the 95% Wilson score interval of the mean"`
}

// variantStats are one variant's figures in the window.
type variantStats struct {
	Variant          string        `json:"variant" doc:"the variant's name; \"\" for turns that ran without a variant"`
	Weight           int           `json:"weight" doc:"the variant's weight now; 0 when the agent no longer has it"`
	Turns            int64         `json:"turns" doc:"replies and recorded failures"`
	Failed           int64         `json:"failed"`
	ErrorRate        float64       `json:"error_rate" doc:"failed over turns; 0 without turns"`
	LatencyP50Ms     float64       `json:"latency_p50_ms" doc:"median time from the user's message to the reply, of turns that did not fail"`
	LatencyP95Ms     float64       `json:"latency_p95_ms" doc:"95th percentile (nearest rank), of turns that did not fail"`
	PromptTokens     int64         `json:"prompt_tokens"`
	CompletionTokens int64         `json:"completion_tokens"`
	Tokens           int64         `json:"tokens"`
	CostUSD          float64       `json:"cost_usd"`
	Feedback         feedbackStats `json:"feedback"`
}

// agentStatsView is the body of GET /api/v1/agents/{id}/stats.
type agentStatsView struct {
	AgentID   string         `json:"agent_id"`
	Since     time.Time      `json:"since"`
	Until     time.Time      `json:"until"`
	Truncated bool           `json:"truncated" doc:"true when the window held more than 100,000 turns: the figures are of the newest 100,000"`
	Variants  []variantStats `json:"variants" doc:"the agent's variants in its order, then any others that ran in the window"`
}

// wilson is the 95% Wilson score interval of the share of up among up+down
// ratings, returned as an interval of the mean rating 2p-1.
func wilson(up, down int64) (mean, low, high float64) {
	n := float64(up + down)
	p := float64(up) / n
	z2 := z95 * z95
	center := (p + z2/(2*n)) / (1 + z2/n)
	half := z95 * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / (1 + z2/n)
	return 2*p - 1, 2*(center-half) - 1, 2*(center+half) - 1
}

// percentile is the nearest-rank q-th percentile (0 < q <= 1) of sorted values.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// agentStats computes the figures of ag from its turns and feedback.
func agentStats(ag persistence.Agent, turns []persistence.AgentTurn, feedback []persistence.VariantFeedback) []variantStats {
	var out []variantStats
	index := map[string]int{}
	at := func(name string) *variantStats {
		i, ok := index[name]
		if !ok {
			i = len(out)
			index[name] = i
			out = append(out, variantStats{Variant: name})
		}
		return &out[i]
	}
	for _, v := range ag.Variants {
		at(v.Name).Weight = v.Weight
	}
	if len(ag.Variants) == 0 {
		at("")
	}
	latencies := map[string][]time.Duration{}
	for _, t := range turns {
		s := at(t.Variant)
		s.Turns++
		if t.Failed {
			s.Failed++
		} else {
			latencies[t.Variant] = append(latencies[t.Variant], t.Latency)
		}
		s.PromptTokens += t.PromptTokens
		s.CompletionTokens += t.CompletionTokens
		s.CostUSD += t.CostUSD
	}
	for _, f := range feedback {
		s := at(f.Variant)
		s.Feedback.Up, s.Feedback.Down, s.Feedback.Ratings = f.Up, f.Down, f.Up+f.Down
		if s.Feedback.Ratings > 0 {
			mean, low, high := wilson(f.Up, f.Down)
			s.Feedback.Mean, s.Feedback.CILow, s.Feedback.CIHigh = &mean, &low, &high
		}
	}
	for i := range out {
		s := &out[i]
		s.Tokens = s.PromptTokens + s.CompletionTokens
		if s.Turns > 0 {
			s.ErrorRate = float64(s.Failed) / float64(s.Turns)
		}
		l := latencies[s.Variant]
		slices.Sort(l)
		s.LatencyP50Ms, s.LatencyP95Ms = percentile(l, 0.5), percentile(l, 0.95)
	}
	return out
}

// getStats serves GET /api/v1/agents/{id}/stats: to the agent's owner, and to
// moderators and admins (agents:read:any), who alone see the built-ins'.
func (a agentRoutes) getStats(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	days := defaultStatsDays
	if raw := c.Query("days"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxStatsDays {
			return Validation(FieldError{Field: "days", Message: "must be a whole number of days from 1 to 90"})
		}
		days = n
	}
	ag, err := a.readable(c, p)
	if err != nil {
		return err
	}
	if (ag.OwnerID == "" || ag.OwnerID != p.UserID) && !p.Can(auth.PermAgentsReadAny) {
		return NewError(http.StatusForbidden, "only the agent's owner, a moderator or an admin may read its statistics")
	}
	until := time.Now().UTC()
	since := until.Add(-time.Duration(days) * 24 * time.Hour)
	turns, err := a.stats.AgentTurns(c.UserContext(), ag.ID, since, maxStatsTurns+1)
	if err != nil {
		return err
	}
	truncated := len(turns) > maxStatsTurns
	if truncated {
		turns = turns[:maxStatsTurns]
	}
	feedback, err := a.stats.AgentFeedback(c.UserContext(), ag.ID, since)
	if err != nil {
		return err
	}
	return c.JSON(agentStatsView{AgentID: ag.ID, Since: since, Until: until, Truncated: truncated, Variants: agentStats(ag, turns, feedback)})
}
