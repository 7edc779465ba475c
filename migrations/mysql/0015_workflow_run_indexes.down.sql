ALTER TABLE workflow_runs
    DROP KEY workflow_runs_status_name,
    ADD KEY workflow_runs_name_status (name, status, owner_id),
    ADD KEY workflow_runs_status (status),
    ADD KEY workflow_runs_parent (parent_id);
