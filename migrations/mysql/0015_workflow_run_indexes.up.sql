-- A run's row is written at trigger time and again when it finishes, so each index on
-- workflow_runs costs every run. Two did not earn theirs: nothing reads runs by
-- parent_id, and the status index (the open-run counts) is the prefix of the index the
-- concurrency caps read, once that leads with status. What is left, and what reads it:
--   PRIMARY (id)                          every read and compare-and-swap of a run
--   owner_created (owner_id, created_at, id)  ListRuns per owner; the owner foreign key
--   due (due_at)                          ClaimDue
--   lease (lease_owner, lease_epoch, status)  ReclaimLapsed, OwnedRuns
--   status_name (status, name, owner_id)  CountActive (caps), CountOpenRuns (metrics)
ALTER TABLE workflow_runs
    DROP KEY workflow_runs_parent,
    DROP KEY workflow_runs_status,
    DROP KEY workflow_runs_name_status,
    ADD KEY workflow_runs_status_name (status, name, owner_id);
