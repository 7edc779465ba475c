// Command hello is the baseline of make bench-http: a bare Fiber hello world
// built from the Fiber and fasthttp versions kowai's go.mod pins, so that the
// comparison measures kowai's own work and not a different server.
//
//	hello -addr 127.0.0.1:0   # prints the address it listens on
package main
