// Package node assembles one kowai node from its configuration and runs it:
// the database and its migrations, Redis, the model stacks, the actor and
// workflow runtimes, the cluster node, the schedule and webhook loops, the
// gateway and the metrics listener. It is the composition root that cmd/kowai
// calls; nothing else in the module imports it, and tests that want a whole
// node in their process use it the same way.
//
// # Lifecycle
//
// New builds every component and acquires the node's resources (database,
// Redis client, tracer, model stacks). It performs the startup I/O (opening and
// migrating the database, pinging Redis, creating the first admin and the
// built-in agents) under the ctx it is given; it listens on nothing. When New
// fails it releases what it had acquired.
//
// Run joins the cluster, then serves until its ctx is done or a component fails,
// and shuts down in the order of a graceful leave: readiness reports draining
// for Config.DrainGrace while requests are still served, the gateway stops and
// finishes its requests, the cluster node passivates its grains (final
// snapshots) and leaves, the group-commit writer drains, and the resources
// acquired by New are released. Run is called at most once; it returns nil
// after a clean shutdown.
//
// Close releases the resources of a node that will not Run. It is safe to call
// after Run (it does nothing then) and more than once.
//
// # Errors
//
// An error that a setting must be changed to fix (a malformed value, a missing
// TLS file, an unknown role) matches ErrConfig with errors.Is; the command
// reports it as bad input.
//
// # Example
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//	defer stop()
//	n, err := node.New(ctx, cfg, node.Options{Logger: log, Getenv: os.Getenv})
//	if err != nil {
//		return err
//	}
//	return n.Run(ctx)
package node
