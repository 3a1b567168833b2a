// Package backends owns Sluice's side of the connection to the databases:
// dialing and authenticating backend connections, and the endpoint sets of a
// cluster (which backend is the writer, which readers may serve a read, and
// how reads are spread over them).
//
// A Cluster holds the latest topology.Snapshot behind an atomic pointer; the
// health prober (and later the fleet) publishes new snapshots, and the client
// sessions read whichever is current when they route a statement.
package backends
