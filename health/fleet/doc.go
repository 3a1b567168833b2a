// Package fleet lets several Sluice instances agree on the health of a
// cluster's writer before anyone fails over.
//
// One instance serves several clusters (say a PostgreSQL cluster and a
// MySQL one). For each it publishes its local Verdict (the epoch and writer
// it believes in, the backends it sees down, their replication positions);
// all of them travel together, encoded by EncodeState, in its memberlist
// node metadata. Metadata rides on memberlist's own alive/push-pull
// traffic, so every live member converges on every other member's latest
// verdicts; custom broadcasts are deliberately not used, because receivers
// do not re-gossip them.
//
// The decision logic is pure, independent of memberlist, and applies to one
// cluster at a time (Fleet.Members and Fleet.WriterDown take the cluster):
// WriterDownQuorum counts fresh verdicts against a configured fleet size
// (never the current member count, which a partition shrinks on every
// side), Leader picks the one instance that acts, Candidate picks the
// replica every instance would promote, and AdoptEpoch / HighestEpoch
// implement "every proxy adopts the highest epoch it hears of".
//
// Fleet wraps a memberlist instance and owns it: Shutdown stops every
// goroutine it started.
package fleet
