-- Fails while a journal or event row names a run that does not exist.
ALTER TABLE workflow_steps
    ADD CONSTRAINT workflow_steps_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE;
ALTER TABLE workflow_events
    ADD CONSTRAINT workflow_events_run_fk FOREIGN KEY (run_id) REFERENCES workflow_runs (id) ON DELETE CASCADE;
