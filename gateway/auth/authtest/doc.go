// Package authtest provides in-memory fakes of the stores gateway/auth
// consumes, and a contract suite that any implementation of those stores,
// fake or real, must pass.
//
// # Fakes
//
// Users and Sessions implement auth.UserStore and auth.SessionStore with
// maps behind a mutex, with the documented errors:
//
//	svc, err := auth.NewService(auth.Config{
//		Users:    authtest.NewUsers(),
//		Sessions: authtest.NewSessions(),
//		...
//	})
//
// # Contract
//
// TestStores runs the store contract against a pair of stores, so an
// adapter over the persistence repositories is checked by the same tests as
// the fakes:
//
//	func TestAuthStores(t *testing.T) {
//		authtest.TestStores(t, func(t *testing.T) (auth.UserStore, auth.SessionStore) {
//			db := openTestDB(t)
//			return newUserAdapter(db), newSessionAdapter(db)
//		})
//	}
package authtest
