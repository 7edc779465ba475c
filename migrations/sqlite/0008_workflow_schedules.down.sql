DROP TABLE webhook_notifications;
DROP TABLE webhook_deliveries;
DROP INDEX workflow_runs_status;
ALTER TABLE workflow_runs DROP COLUMN webhook_url;
DROP TABLE workflow_schedules;
