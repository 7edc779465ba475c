// Package testpb holds the messages of clustertest's echo grain, generated from
// test.proto by `go tool protogen`.
package testpb
