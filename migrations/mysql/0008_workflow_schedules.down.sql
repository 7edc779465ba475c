DROP TABLE webhook_notifications;
DROP TABLE webhook_deliveries;
ALTER TABLE workflow_runs DROP KEY workflow_runs_status, DROP COLUMN webhook_url;
DROP TABLE workflow_schedules;
