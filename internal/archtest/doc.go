// Package archtest holds repository-level checks that run with the test
// suite: the dependency rules between kowai's packages (docs/architecture.md), the
// presence of a doc.go in every top-level package, and the shape of the
// development docker-compose.yml, which no Docker engine here can run.
package archtest
