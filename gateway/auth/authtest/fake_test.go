package authtest_test

import (
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/auth/authtest"
)

func TestFakesPassContract(t *testing.T) {
	authtest.TestStores(t, func(*testing.T) (auth.UserStore, auth.SessionStore) {
		return authtest.NewUsers(), authtest.NewSessions()
	})
}
