-- Every user's model usage since a time (the console's "model cost today" of the
-- whole cluster, GET /api/v1/admin/figures) reads the ledger by time alone.
CREATE INDEX usage_ledger_time ON usage_ledger (created_at);
