package gateway

import (
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/auth/authtest"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestAuthStoresContract(t *testing.T) {
	for _, dialect := range []struct {
		name string
		open func(testing.TB) *persistence.DB
	}{{"sqlite", persisttest.SQLite}, {"mysql", persisttest.MySQL}} {
		t.Run(dialect.name, func(t *testing.T) {
			t.Parallel()
			authtest.TestStores(t, func(t *testing.T) (auth.UserStore, auth.SessionStore) {
				db := dialect.open(t)
				return NewAuthUsers(db), NewAuthSessions(db)
			})
		})
	}
}
