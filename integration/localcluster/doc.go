// Package localcluster starts throwaway database clusters on the loopback
// interface for integration tests and for `sluice demo`.
//
// StartPostgres builds a PostgreSQL primary plus streaming hot-standby
// replicas in a directory of their own:
//
//	c, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{Replicas: 2})
//	if err != nil { ... }
//	defer c.Stop()
//	conn, err := pgx.Connect(ctx, c.Primary.DSN("app", "app", "app"))
//
// Layout of the cluster directory (one sub-directory per node):
//
//	<Dir>/pg0/data          data directory of the primary
//	<Dir>/pg0/postgres.log  server log (stdout and stderr of the postmaster)
//	<Dir>/pg0/.s.PGSQL.<port>  unix socket (unless the path would be too long)
//	<Dir>/pg1/...           first replica, and so on
//
// The servers are tuned for tests, not for durability (fsync=off,
// full_page_writes=off). When the calling process runs as root, the
// servers and the PostgreSQL tools run as the unprivileged "postgres"
// account (or "nobody"), because PostgreSQL refuses to run as root.
//
// Every postmaster is a direct child of the calling process: it is reaped
// here (no zombies even under an init that does not reap), it gets its own
// process group (a terminal's Ctrl-C reaches only the caller, which can
// then shut the cluster down in order), and on Linux it receives SIGQUIT
// (immediate shutdown) if the calling process dies without calling Stop.
package localcluster
