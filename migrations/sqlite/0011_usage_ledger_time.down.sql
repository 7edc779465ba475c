DROP INDEX usage_ledger_time;
