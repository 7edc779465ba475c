package cluster

import (
	"context"
	"encoding/json"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster/clusterpb"
)

// WorkflowRunKind is the run grain's kind (actors.KindWorkflowRun).
const WorkflowRunKind = "workflow-run"

// WorkflowClient is the typed client of the workflow run grains. Every method
// answers the run's status after the command; a grain's refusal comes back as an
// error wrapping *actorpb.Error (actorpb.CodeOf gives its code).
type WorkflowClient struct {
	Caller GrainCaller
}

// Trigger creates the run runID of workflow (owned by ownerID, with validated
// parameters, notifying webhookURL, already checked, of its final state when it is
// not empty) unless it exists, and starts it.
func (wc WorkflowClient) Trigger(ctx context.Context, runID, workflow, ownerID string, params json.RawMessage, webhookURL string) (string, error) {
	res, err := actorpb.As[*actorpb.RunAck](wc.Caller.Call(ctx, WorkflowRunKind, runID, &actorpb.StartRun{
		CorrelationId: clusterpb.CorrelationID(ctx), RunId: runID, Workflow: workflow, OwnerId: ownerID, ParametersJson: string(params),
		WebhookUrl: webhookURL}))
	return res.GetStatus(), err
}

// Cancel stops the run; a finished run stays as it is.
func (wc WorkflowClient) Cancel(ctx context.Context, runID string) (string, error) {
	res, err := actorpb.As[*actorpb.RunAck](wc.Caller.Call(ctx, WorkflowRunKind, runID, &actorpb.CancelRun{
		CorrelationId: clusterpb.CorrelationID(ctx), RunId: runID}))
	return res.GetStatus(), err
}

// Resume supplies the input a paused run waits for.
func (wc WorkflowClient) Resume(ctx context.Context, runID string, input json.RawMessage) (string, error) {
	res, err := actorpb.As[*actorpb.RunAck](wc.Caller.Call(ctx, WorkflowRunKind, runID, &actorpb.ResumeRun{
		CorrelationId: clusterpb.CorrelationID(ctx), RunId: runID, InputJson: string(input)}))
	return res.GetStatus(), err
}

// Retry restarts a failed run from its first failed task.
func (wc WorkflowClient) Retry(ctx context.Context, runID string) (string, error) {
	res, err := actorpb.As[*actorpb.RunAck](wc.Caller.Call(ctx, WorkflowRunKind, runID, &actorpb.RetryRun{
		CorrelationId: clusterpb.CorrelationID(ctx), RunId: runID}))
	return res.GetStatus(), err
}
