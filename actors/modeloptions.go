package actors

import (
	"context"
	"slices"
	"sync"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/signatures/lm"
)

// replyModel is the model one reply calls: the runtime's, with the request's
// model options laid over every call, and the stop reason of the last call
// remembered for the answer (OpenAI's finish_reason).
type replyModel struct {
	lm.LM
	opts *actorpb.ModelOptions

	mu   sync.Mutex
	stop string
}

func newReplyModel(model lm.LM, opts *actorpb.ModelOptions) *replyModel {
	return &replyModel{LM: model, opts: opts}
}

// Generate implements lm.LM.
func (m *replyModel) Generate(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	if o := m.opts; o != nil {
		r := *req
		if o.Temperature != nil {
			r.Temperature = o.GetTemperature()
		}
		if o.GetMaxTokens() > 0 {
			r.MaxTokens = int(o.GetMaxTokens())
		}
		if len(o.GetStop()) > 0 {
			r.Stop = slices.Clone(o.GetStop())
		}
		if o.Seed != nil {
			seed := int(o.GetSeed())
			r.Seed = &seed
		}
		req = &r
	}
	res, err := m.LM.Generate(ctx, req)
	if err == nil && res != nil {
		m.mu.Lock()
		m.stop = res.StopReason
		m.mu.Unlock()
	}
	return res, err
}

// stopReason is the stop reason of the last call that answered.
func (m *replyModel) stopReason() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stop
}

// modelOf is the model an agent names: the runtime's LM when it names none or no
// resolver is set.
// premiumModel reports whether the model called name is premium-priced, when
// Models can tell (an *lm.Catalog can).
func (rt *Runtime) premiumModel(name string) bool { return rt.modelInfo(name).Premium }

// modelInfo describes the model called name ("" the default) when Models can (an
// *lm.Catalog can); else it is the zero ModelInfo.
func (rt *Runtime) modelInfo(name string) lm.ModelInfo {
	cat, ok := rt.deps.Models.(interface {
		Lookup(name string) (lm.ModelInfo, bool)
	})
	if !ok {
		return lm.ModelInfo{}
	}
	info, _ := cat.Lookup(name)
	return info
}

func (rt *Runtime) modelOf(name string) (lm.LM, error) {
	if name == "" || rt.deps.Models == nil {
		return rt.deps.LM, nil
	}
	return rt.deps.Models.Model(name)
}
