-- Run ownership by node heartbeat instead of a lease per run.
-- Every node process (node_id, with an epoch per process start) renews its row's
-- expires_at once a second. An executing run names its node and epoch
-- (lease_owner, lease_epoch) and has no due_at; when its node's row lapses, a
-- survivor makes the node's executing runs due (a version CAS each, which fences a
-- lost activation), found through workflow_runs_lease, and the due-run claim resumes
-- them. A tick reads the lapsed node rows (workflow_nodes_expires) and their runs
-- only: its cost follows what died, not what is open.
CREATE TABLE workflow_nodes (
    node_id    VARCHAR(64) NOT NULL,
    epoch      BIGINT      NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (node_id, epoch),
    KEY workflow_nodes_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Continue-as-new: the run that continues this one (empty: none), and the run this one
-- continues.
ALTER TABLE workflow_runs
    ADD COLUMN lease_epoch     BIGINT   NOT NULL DEFAULT 0,
    ADD COLUMN continued_as    CHAR(36) NOT NULL DEFAULT '',
    ADD COLUMN continued_from  CHAR(36) NOT NULL DEFAULT '',
    ADD KEY workflow_runs_lease (lease_owner, lease_epoch, status);
