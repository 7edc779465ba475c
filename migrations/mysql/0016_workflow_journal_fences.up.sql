-- The journal (workflow_steps) and the event log (workflow_events) no longer check run_id
-- against workflow_runs with a foreign key. Every write of them either commits with its
-- run's row (a new run's insert, or a compare-and-swap of the run that must match) or
-- is fenced by the run's version (a subquery that reads the run's row, share-locked
-- until the commit); AppendStep checks that the run exists the same way. So the key
-- check repeated what the fence already read, once per row: a second lookup and lock of
-- the run's row for every task. Runs are never deleted but by account erasure, which
-- deletes their journal and events first, so ON DELETE CASCADE had nothing to do.
-- SQLite keeps its foreign keys (0016 is empty there): its single writer takes no row
-- locks, and a rebuilt table would buy nothing.
ALTER TABLE workflow_steps DROP FOREIGN KEY workflow_steps_run_fk;
ALTER TABLE workflow_events DROP FOREIGN KEY workflow_events_run_fk;
