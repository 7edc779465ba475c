package gateway

import (
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/signatures/lm"
)

// ModelCatalog is what the gateway needs of the node's models (an
// *lm.Catalog): which names agents may give, and what each costs.
type ModelCatalog interface {
	// Lookup describes the model an agent names; ok is false for a model the
	// operator did not configure. "" is the node's default.
	Lookup(name string) (lm.ModelInfo, bool)
	// List returns every model, the default first.
	List() []lm.ModelInfo
}

// modelsView is the body of GET /api/v1/models.
type modelsView struct {
	Models []lm.ModelInfo `json:"models" doc:"the models you may give as an agent's model, the node's default first"`
}

// modelRoutes serves GET /api/v1/models.
type modelRoutes struct{ catalog ModelCatalog }

func (m modelRoutes) list(c *fiber.Ctx) error {
	p, err := principal(c)
	if err != nil {
		return err
	}
	out := modelsView{Models: []lm.ModelInfo{}}
	for _, info := range m.catalog.List() {
		if !info.Premium || p.Can(auth.PermPremiumModels) {
			out.Models = append(out.Models, info)
		}
	}
	return c.JSON(out)
}

// checkModel returns the field error of an agent's model for p: unknown
// models, and premium ones without models:premium. A nil catalog accepts
// any name.
func checkModel(catalog ModelCatalog, p auth.Principal, name string) *FieldError {
	if catalog == nil {
		return nil
	}
	info, ok := catalog.Lookup(name)
	switch {
	case !ok:
		return &FieldError{Field: "model", Message: fmt.Sprintf("%q is not a configured model; see GET /api/v1/models", name)}
	case info.Premium && !p.Can(auth.PermPremiumModels):
		return &FieldError{Field: "model", Message: fmt.Sprintf("%q is a premium model: it needs the models:premium permission", name)}
	}
	return nil
}

// mountModels registers GET /api/v1/models.
func (s *Server) mountModels(m modelRoutes, authed fiber.Handler, rl rateLimits) {
	s.Route(fiber.MethodGet, "/api/v1/models", Op{Summary: "The models you may give agents (premium ones need models:premium), with their prices per 1,000 tokens", Tag: "Agents", Auth: true,
		Response: modelsView{}, Errors: []int{http.StatusForbidden}},
		authed, rl.user("models.list"), auth.RequirePermission(auth.PermAgentsRead), m.list)
}
