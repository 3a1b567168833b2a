// Package health probes every backend of a cluster, turns the probe results
// into verdicts with hysteresis, and publishes the resulting topology
// snapshots (who is the writer, which readers are healthy, how far each has
// replayed) with an epoch that grows whenever the writer changes.
package health
