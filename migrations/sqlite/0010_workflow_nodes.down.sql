DROP INDEX workflow_runs_lease;
ALTER TABLE workflow_runs DROP COLUMN continued_from;
ALTER TABLE workflow_runs DROP COLUMN continued_as;
ALTER TABLE workflow_runs DROP COLUMN lease_epoch;
DROP TABLE workflow_nodes;
