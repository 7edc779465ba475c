DROP TABLE IF EXISTS user_budgets;
DROP TABLE IF EXISTS usage_ledger;
