// Package durability tests kowai's grains hosted by real cluster nodes. It runs without
// the race detector (the cluster library has data races of its own), so it holds only
// tests; everything testable on a plain actor system is tested, raced, in package
// actors.
package durability
