-- A run's row is written at trigger time and again when it finishes, so each index on
-- workflow_runs costs every run. Two did not earn theirs: nothing reads runs by
-- parent_id, and the status index (the open-run counts) is the prefix of the index the
-- concurrency caps read, once that leads with status (see the MariaDB migration for
-- what reads each index left).
DROP INDEX workflow_runs_parent;
DROP INDEX workflow_runs_status;
DROP INDEX workflow_runs_name_status;
CREATE INDEX workflow_runs_status_name ON workflow_runs (status, name, owner_id);
