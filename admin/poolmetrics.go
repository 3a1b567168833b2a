package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicedb/sluice/backends/pool"
)

// PoolCollector exports the backend connection pools of every cluster,
// read from stats (cluster name → its pools) at every scrape, summed over
// databases and connection profiles:
//
//	sluice_pool_server_conns{cluster,backend,user,state="idle"|"in_use"}
//	sluice_pool_waiting_clients{cluster,backend,user}
//	sluice_pool_checkout_timeouts_total{cluster,backend,user}
//
// Register it in Metrics.Registry.
type PoolCollector struct {
	stats    func() map[string][]pool.Stats
	conns    *prometheus.Desc
	waiting  *prometheus.Desc
	timeouts *prometheus.Desc
}

// NewPoolCollector returns a collector over stats.
func NewPoolCollector(stats func() map[string][]pool.Stats) *PoolCollector {
	l := []string{"cluster", "backend", "user"}
	return &PoolCollector{
		stats:    stats,
		conns:    prometheus.NewDesc("sluice_pool_server_conns", "Backend connections held by the pools, idle or in use by a client.", append(l, "state"), nil),
		waiting:  prometheus.NewDesc("sluice_pool_waiting_clients", "Clients waiting for a backend connection of a full pool.", l, nil),
		timeouts: prometheus.NewDesc("sluice_pool_checkout_timeouts_total", "Clients that waited checkout_timeout for a backend connection in vain.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.waiting
	ch <- c.timeouts
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ cluster, backend, user string }
	type sum struct{ idle, inUse, waiting, timeouts float64 }
	sums := make(map[key]*sum)
	for cluster, stats := range c.stats() {
		for _, s := range stats {
			k := key{cluster, s.Key.Addr, s.Key.User}
			v := sums[k]
			if v == nil {
				v = &sum{}
				sums[k] = v
			}
			v.idle += float64(s.Idle)
			v.inUse += float64(s.InUse)
			v.waiting += float64(s.Waiting)
			v.timeouts += float64(s.Timeouts)
		}
	}
	for k, v := range sums {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, v.idle, k.cluster, k.backend, k.user, "idle")
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, v.inUse, k.cluster, k.backend, k.user, "in_use")
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, v.waiting, k.cluster, k.backend, k.user)
		ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, v.timeouts, k.cluster, k.backend, k.user)
	}
}
