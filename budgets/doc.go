// Package budgets holds users to their spending limits on model calls.
//
// Every user has a token and a dollar limit per UTC day and per UTC month:
// by default those of their roles (KOWAI_BUDGETS, the most generous of the
// user's roles per measure), or an admin's override. Every model call
// charged to a user is recorded in the usage ledger (persistence.UsageStore,
// summed by user, UTC minute, agent and model) (in the background through the
// group-commit writer when one is given, one write at a time per Enforcer)
// and added to a Counter: in Redis when configured, so that every node sees
// one user's spending, otherwise in process. A counter that has never seen a
// user in the current period starts from the ledger.
//
// The Enforcer checks a user's spending before each model call and refuses
// with an *Exceeded error (matching lm.ErrBudgetExceeded) once a limit is
// reached; the call that crosses a limit has been paid for and is kept. So a
// user overspends by at most the calls that were already running when the
// limit was reached: with sequential turns, at most one turn per node.
package budgets
