DROP INDEX workflow_runs_status_name;
CREATE INDEX workflow_runs_name_status ON workflow_runs (name, status, owner_id);
CREATE INDEX workflow_runs_status ON workflow_runs (status);
CREATE INDEX workflow_runs_parent ON workflow_runs (parent_id);
