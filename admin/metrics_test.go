package admin

import (
	"slices"
	"strings"
	"testing"
)

// counterValue gathers m's registry and returns the value of the counter
// family name whose labels equal labels (in any order), and whether it was
// found.
func counterValue(t *testing.T, m *Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range metric.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			match := true
			for k, v := range labels {
				if got[k] != v {
					match = false
				}
			}
			if match {
				return metric.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func TestMetricsInstancesAreIndependent(t *testing.T) {
	a, b := NewMetrics(), NewMetrics() // a second registration must not panic
	if a.Registry == b.Registry {
		t.Fatal("two Metrics share one registry")
	}
	a.Statements.WithLabelValues("pg", TargetWriter).Add(3)
	b.Statements.WithLabelValues("pg", TargetWriter).Inc()
	a.AuthFailures.WithLabelValues("pg", AuthReasonPassword).Inc()

	lbl := map[string]string{"listener": "pg", "target": "writer"}
	if v, ok := counterValue(t, a, "sluice_statements_total", lbl); !ok || v != 3 {
		t.Errorf("a: sluice_statements_total = %v (found %v), want 3", v, ok)
	}
	if v, ok := counterValue(t, b, "sluice_statements_total", lbl); !ok || v != 1 {
		t.Errorf("b: sluice_statements_total = %v (found %v), want 1", v, ok)
	}
	authLbl := map[string]string{"listener": "pg", "reason": "password"}
	if _, ok := counterValue(t, b, "sluice_auth_failures_total", authLbl); ok {
		t.Error("b has an auth failure series that was only incremented on a")
	}
}

// TestMetricsNamesAndLabels touches every field and checks that exactly the
// documented families, with the documented label names, are exposed.
func TestMetricsNamesAndLabels(t *testing.T) {
	m := NewMetrics()
	m.ClientConnections.WithLabelValues("pg").Set(2)
	m.ClientConnsTotal.WithLabelValues("pg").Inc()
	m.AuthFailures.WithLabelValues("pg", AuthReasonTLSRequired).Inc()
	m.Statements.WithLabelValues("pg", TargetReader).Inc()
	m.Pins.WithLabelValues("pg", "temp_table").Inc()
	m.ReadYourWritesFallbacks.WithLabelValues("pg").Inc()
	m.BackendConnections.WithLabelValues("main", "db1").Set(4)
	m.BackendDials.WithLabelValues("main", "db1", ResultOK).Inc()
	m.BackendErrors.WithLabelValues("main", "db1").Inc()
	m.ProbeResults.WithLabelValues("main", "db1", ResultError).Inc()
	m.ProbeLatency.WithLabelValues("main", "db1").Observe(0.002)
	m.BackendUp.WithLabelValues("main", "db1", RoleWriter).Set(1)
	m.ReplicaLag.WithLabelValues("main", "db2").Set(0.5)
	m.TopologyEpoch.WithLabelValues("main").Set(7)
	m.WriterChanges.WithLabelValues("main").Inc()
	m.Failovers.WithLabelValues("main", FailoverPromote).Inc()
	m.FleetMembers.Set(3)
	m.ProtocolErrors.WithLabelValues("pg", ProtocolErrorTooLarge).Inc()

	want := map[string][]string{
		"sluice_client_connections":               {"listener"},
		"sluice_client_connections_total":         {"listener"},
		"sluice_auth_failures_total":              {"listener", "reason"},
		"sluice_statements_total":                 {"listener", "target"},
		"sluice_pins_total":                       {"listener", "reason"},
		"sluice_read_your_writes_fallbacks_total": {"listener"},
		"sluice_backend_connections":              {"backend", "cluster"},
		"sluice_backend_dials_total":              {"backend", "cluster", "result"},
		"sluice_backend_errors_total":             {"backend", "cluster"},
		"sluice_probe_results_total":              {"backend", "cluster", "result"},
		"sluice_probe_duration_seconds":           {"backend", "cluster"},
		"sluice_backend_up":                       {"backend", "cluster", "role"},
		"sluice_replica_lag_seconds":              {"backend", "cluster"},
		"sluice_topology_epoch":                   {"cluster"},
		"sluice_writer_changes_total":             {"cluster"},
		"sluice_failovers_total":                  {"action", "cluster"},
		"sluice_fleet_members":                    nil,
		"sluice_protocol_errors_total":            {"kind", "listener"},
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	seen := map[string]bool{}
	var sawGo, sawProcess bool
	for _, f := range families {
		name := f.GetName()
		switch {
		case strings.HasPrefix(name, "go_"):
			sawGo = true
			continue
		case strings.HasPrefix(name, "process_"):
			sawProcess = true
			continue
		}
		labels, ok := want[name]
		if !ok {
			t.Errorf("unexpected family %q", name)
			continue
		}
		seen[name] = true
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		var got []string
		for _, lp := range f.GetMetric()[0].GetLabel() {
			got = append(got, lp.GetName())
		}
		slices.Sort(got)
		if !slices.Equal(got, labels) {
			t.Errorf("%s labels = %v, want %v", name, got, labels)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("family %q not exposed", name)
		}
	}
	if !sawGo {
		t.Error("Go runtime collector not registered")
	}
	if !sawProcess {
		t.Log("no process_* metrics (the process collector is unsupported on this platform)")
	}
}

func TestProbeLatencyBucketsAreFresh(t *testing.T) {
	b := ProbeLatencyBuckets()
	b[0] = 42
	if ProbeLatencyBuckets()[0] == 42 {
		t.Fatal("ProbeLatencyBuckets returns shared state")
	}
	if !slices.IsSorted(ProbeLatencyBuckets()) {
		t.Fatal("buckets not sorted")
	}
}
