DROP INDEX usage_ledger_time ON usage_ledger;
