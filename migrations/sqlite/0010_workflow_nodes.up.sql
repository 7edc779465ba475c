-- Run ownership by node heartbeat instead of a lease per run.
-- Every node process (node_id, with an epoch per process start) renews its row's
-- expires_at once a second. An executing run names its node and epoch
-- (lease_owner, lease_epoch) and has no due_at; when its node's row lapses, a
-- survivor makes the node's executing runs due (a version CAS each, which fences a
-- lost activation), found through workflow_runs_lease, and the due-run claim resumes
-- them. A tick reads the lapsed node rows (workflow_nodes_expires) and their runs
-- only: its cost follows what died, not what is open.
CREATE TABLE workflow_nodes (
    node_id    TEXT     NOT NULL,
    epoch      INTEGER  NOT NULL,
    expires_at DATETIME NOT NULL,
    PRIMARY KEY (node_id, epoch)
);
CREATE INDEX workflow_nodes_expires ON workflow_nodes (expires_at);

ALTER TABLE workflow_runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
-- Continue-as-new: the run that continues this one (empty: none), and the run this one
-- continues.
ALTER TABLE workflow_runs ADD COLUMN continued_as TEXT NOT NULL DEFAULT '';
ALTER TABLE workflow_runs ADD COLUMN continued_from TEXT NOT NULL DEFAULT '';
CREATE INDEX workflow_runs_lease ON workflow_runs (lease_owner, lease_epoch, status);
