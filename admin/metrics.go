// Package admin is Sluice's observation surface: the Prometheus metrics every
// other package updates, and the HTTP server that exposes /metrics, /status
// and /healthz.
//
// Nothing here is global. Each proxy instance builds its own Metrics with
// NewMetrics, which owns a private prometheus.Registry, so several proxies
// can run in one process (as they do in tests) without sharing or clashing
// over counters. The default Prometheus registry is never touched.
//
// admin knows nothing about routing policy: it only names the series and
// serves them. Label values for the enumerated labels are offered as
// constants (TargetWriter, AuthReasonPassword, ResultOK, ...) so that
// producers and dashboards agree on the spelling.
package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace is the prefix of every Sluice-specific metric name.
const Namespace = "sluice"

// Values of the "target" label of sluice_statements_total.
const (
	TargetWriter = "writer" // the statement or batch was sent to the writer
	TargetReader = "reader" // the statement or batch was sent to a reader
)

// Values of the "reason" label of sluice_auth_failures_total.
const (
	AuthReasonPassword        = "password"         // wrong password or unknown user
	AuthReasonUnknownDatabase = "unknown_database" // the requested database is not served
	AuthReasonProtocol        = "protocol"         // the client broke the handshake protocol
	AuthReasonTLSRequired     = "tls_required"     // the client refused TLS where it is mandatory
	AuthReasonOther           = "other"            // anything else
)

// Values of the "result" label of sluice_backend_dials_total and
// sluice_probe_results_total.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// Values of the "action" label of sluice_failovers_total.
const (
	FailoverPromote  = "promote"
	FailoverDiscover = "discover"
)

// Values of the "role" label of sluice_backend_up. They match the String
// form of topology.Role.
const (
	RoleWriter  = "writer"
	RoleReader  = "reader"
	RoleUnknown = "unknown"
)

// Common values of the "kind" label of sluice_protocol_errors_total. Other
// kinds may be used; keep them short, lower case and of low cardinality.
const (
	ProtocolErrorMalformed = "malformed" // a message that could not be parsed
	ProtocolErrorTooLarge  = "too_large" // a message over the configured size limit
)

// ProbeLatencyBuckets returns the histogram buckets, in seconds, of
// sluice_probe_duration_seconds: from half a millisecond (a local replica)
// up to five seconds (well past any sensible probe timeout). Each call
// returns a new slice.
func ProbeLatencyBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
}

// Metrics holds every metric of one Sluice instance, registered in the
// instance's own Registry. All fields are safe for concurrent use; the
// struct itself must not be copied after NewMetrics returns it and its
// fields must not be reassigned.
type Metrics struct {
	// Registry is the private registry holding every metric below plus the
	// Go runtime and process collectors. Serve it with promhttp.HandlerFor
	// (Server does) or gather it directly in tests.
	Registry *prometheus.Registry

	// ClientConnections is sluice_client_connections{listener}: client
	// connections currently open on each listener.
	ClientConnections *prometheus.GaugeVec
	// ClientConnsTotal is sluice_client_connections_total{listener}: client
	// connections accepted on each listener since start.
	ClientConnsTotal *prometheus.CounterVec
	// AuthFailures is sluice_auth_failures_total{listener,reason}: failed
	// client authentications; reason is one of the AuthReason* constants.
	AuthFailures *prometheus.CounterVec
	// Statements is sluice_statements_total{listener,target}: statements (or
	// batches, when a protocol sends several in one routed unit) routed to
	// the writer or a reader; target is TargetWriter or TargetReader.
	Statements *prometheus.CounterVec
	// Pins is sluice_pins_total{listener,reason}: sessions pinned to the
	// writer, by the reason the router gave.
	Pins *prometheus.CounterVec
	// ReadYourWritesFallbacks is
	// sluice_read_your_writes_fallbacks_total{listener}: reads sent to the
	// writer because no replica had replayed the session's last write.
	ReadYourWritesFallbacks *prometheus.CounterVec

	// BackendConnections is sluice_backend_connections{cluster,backend}:
	// connections currently open from this proxy to each backend.
	BackendConnections *prometheus.GaugeVec
	// BackendDials is sluice_backend_dials_total{cluster,backend,result}:
	// attempts to open a backend connection (including its
	// authentication); result is ResultOK or ResultError.
	BackendDials *prometheus.CounterVec
	// BackendErrors is sluice_backend_errors_total{cluster,backend}: backend
	// connections lost in the middle of a session.
	BackendErrors *prometheus.CounterVec

	// ProbeResults is sluice_probe_results_total{cluster,backend,result}:
	// health probes run against each backend; result is ResultOK or
	// ResultError.
	ProbeResults *prometheus.CounterVec
	// ProbeLatency is sluice_probe_duration_seconds{cluster,backend}: how
	// long each health probe took, in seconds (buckets:
	// ProbeLatencyBuckets()).
	ProbeLatency *prometheus.HistogramVec
	// BackendUp is sluice_backend_up{cluster,backend,role}: 1 when the
	// backend is healthy, 0 otherwise; role is RoleWriter, RoleReader or
	// RoleUnknown. When a backend's role changes, delete the series with
	// the old role so that only one series per backend remains.
	BackendUp *prometheus.GaugeVec
	// ReplicaLag is sluice_replica_lag_seconds{cluster,backend}: the
	// replica's apply delay as last measured, in seconds.
	ReplicaLag *prometheus.GaugeVec
	// TopologyEpoch is sluice_topology_epoch{cluster}: the epoch of the
	// topology snapshot this proxy currently routes by.
	TopologyEpoch *prometheus.GaugeVec
	// WriterChanges is sluice_writer_changes_total{cluster}: times this
	// proxy adopted a topology with a different writer.
	WriterChanges *prometheus.CounterVec
	// Failovers is sluice_failovers_total{cluster,action}: writer changes
	// this proxy decided for the fleet; action is FailoverPromote (it
	// promoted a replica) or FailoverDiscover (it adopted a backend that
	// another tool had promoted).
	Failovers *prometheus.CounterVec
	// FleetMembers is sluice_fleet_members: live fleet members this proxy
	// sees, itself included (1 without gossip).
	FleetMembers prometheus.Gauge

	// ProtocolErrors is sluice_protocol_errors_total{listener,kind}: client
	// protocol violations; kind is e.g. ProtocolErrorMalformed or
	// ProtocolErrorTooLarge.
	ProtocolErrors *prometheus.CounterVec
}

// NewMetrics creates a fresh private registry and registers in it every
// Sluice metric together with the Go runtime and process collectors. Each
// call returns metrics that share nothing with those of any other call.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,

		ClientConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "client_connections",
			Help:      "Client connections currently open, per listener.",
		}, []string{"listener"}),
		ClientConnsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "client_connections_total",
			Help:      "Client connections accepted, per listener.",
		}, []string{"listener"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "auth_failures_total",
			Help:      "Failed client authentications, per listener and reason (password, unknown_database, protocol, tls_required, other).",
		}, []string{"listener", "reason"}),
		Statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "statements_total",
			Help:      "Statements or batches routed, per listener and target (writer, reader).",
		}, []string{"listener", "target"}),
		Pins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "pins_total",
			Help:      "Sessions pinned to the writer, per listener and reason.",
		}, []string{"listener", "reason"}),
		ReadYourWritesFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "read_your_writes_fallbacks_total",
			Help:      "Reads sent to the writer because no replica had replayed the session's last write, per listener.",
		}, []string{"listener"}),

		BackendConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "backend_connections",
			Help:      "Connections currently open to each backend.",
		}, []string{"cluster", "backend"}),
		BackendDials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "backend_dials_total",
			Help:      "Backend connection attempts, per backend and result (ok, error).",
		}, []string{"cluster", "backend", "result"}),
		BackendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "backend_errors_total",
			Help:      "Backend connections lost in the middle of a session.",
		}, []string{"cluster", "backend"}),

		ProbeResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "probe_results_total",
			Help:      "Health probes run, per backend and result (ok, error).",
		}, []string{"cluster", "backend", "result"}),
		ProbeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "probe_duration_seconds",
			Help:      "Duration of health probes, per backend.",
			Buckets:   ProbeLatencyBuckets(),
		}, []string{"cluster", "backend"}),
		BackendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "backend_up",
			Help:      "1 if the backend is healthy, 0 if not, with its last known role (writer, reader, unknown).",
		}, []string{"cluster", "backend", "role"}),
		ReplicaLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "replica_lag_seconds",
			Help:      "Replica apply delay as last measured, in seconds.",
		}, []string{"cluster", "backend"}),
		TopologyEpoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "topology_epoch",
			Help:      "Epoch of the topology snapshot currently in use, per cluster.",
		}, []string{"cluster"}),
		WriterChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "writer_changes_total",
			Help:      "Times a topology with a different writer was adopted, per cluster.",
		}, []string{"cluster"}),
		Failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "failovers_total",
			Help:      "Writer changes this proxy decided for the fleet, per cluster and action (promote, discover).",
		}, []string{"cluster", "action"}),
		FleetMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "fleet_members",
			Help:      "Live fleet members this proxy sees, itself included.",
		}),

		ProtocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "protocol_errors_total",
			Help:      "Client protocol violations, per listener and kind (malformed, too_large, ...).",
		}, []string{"listener", "kind"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ClientConnections,
		m.ClientConnsTotal,
		m.AuthFailures,
		m.Statements,
		m.Pins,
		m.ReadYourWritesFallbacks,
		m.BackendConnections,
		m.BackendDials,
		m.BackendErrors,
		m.ProbeResults,
		m.ProbeLatency,
		m.BackendUp,
		m.ReplicaLag,
		m.TopologyEpoch,
		m.WriterChanges,
		m.Failovers,
		m.FleetMembers,
		m.ProtocolErrors,
	)
	return m
}
