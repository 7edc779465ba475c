ALTER TABLE workflow_runs
    DROP KEY workflow_runs_lease,
    DROP COLUMN continued_from,
    DROP COLUMN continued_as,
    DROP COLUMN lease_epoch;
DROP TABLE workflow_nodes;
