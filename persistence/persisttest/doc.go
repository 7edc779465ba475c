// Package persisttest gives tests fresh, isolated databases: a migrated SQLite file in the
// test's temporary directory, or a uniquely named MariaDB database on the server named by
// KOWAI_TEST_MYSQL_DSN, dropped when the test ends. Tests using it may run in parallel.
//
// # MariaDB availability
//
// When KOWAI_TEST_MYSQL_DSN is unset, MariaDB tests fail under CI=true and are skipped,
// with a loud message, otherwise. Use the same variable form as KOWAI_DATABASE_URL:
//
//	KOWAI_TEST_MYSQL_DSN=mysql://root@127.0.0.1:3306/kowai_test
//
// The database named there need not exist; each test creates its own beside it.
//
// # Contract suites
//
// Each runs one test body against both dialects, so a repository contract is written
// once:
//
//	func TestUsers(t *testing.T) {
//		persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
//			users := persistence.NewUserStore(db)
//			...
//		})
//	}
package persisttest
