package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The schema is the Go types above: their mapstructure tags are the keys.
// This file walks the types to check the YAML document (unknown keys, value
// types, with line numbers) and to enumerate the environment overrides.

var (
	durationType = reflect.TypeFor[time.Duration]()
	stringsType  = reflect.TypeFor[[]string]()
)

// namePattern is what map keys (cluster names) must look like: viper lower
// cases keys and splits them on '.', and environment variable names are
// derived from them.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

const nameRule = "use lower-case letters, digits, '-' and '_', starting with a letter or digit"

// keyPath is a key path: string segments are keys, int segments list indexes.
type keyPath []any

func (p keyPath) key(k string) keyPath { return append(p[:len(p):len(p)], k) }
func (p keyPath) index(i int) keyPath  { return append(p[:len(p):len(p)], i) }

// String renders the path as in error messages: clusters.main-pg.backends[1].address.
func (p keyPath) String() string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		}
	}
	return b.String()
}

// viperKey renders the path as a viper key (only for paths without indexes).
func (p keyPath) viperKey() string {
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ".")
}

// env renders the path as its environment variable:
// SLUICE_CLUSTERS_MAIN_PG_BACKENDS_1_ADDRESS.
func (p keyPath) env() string {
	parts := []string{"SLUICE"}
	for _, s := range p {
		parts = append(parts, strings.ToUpper(strings.ReplaceAll(fmt.Sprint(s), "-", "_")))
	}
	return strings.Join(parts, "_")
}

type schemaField struct {
	name string
	typ  reflect.Type
}

// fieldsOf lists the keys of a struct type, in declaration order.
func fieldsOf(t reflect.Type) []schemaField {
	var fs []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs = append(fs, schemaField{name, f.Type})
	}
	return fs
}

// isLeaf reports whether values of t are scalars (for env overrides: a
// []string is one comma-separated value).
func isLeaf(t reflect.Type) bool {
	switch {
	case t == durationType, t == byteSizeType, t == stringsType:
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// checker walks a YAML document against the schema.
type checker struct {
	errs []error
}

func (c *checker) addf(n *yaml.Node, p keyPath, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(p) > 0 {
		msg = p.String() + ": " + msg
	}
	if n != nil && n.Line > 0 {
		msg += fmt.Sprintf(" (line %d)", n.Line)
	}
	c.errs = append(c.errs, fmt.Errorf("%s", msg))
}

// checkDocument checks a whole parsed file against the Config schema.
func checkDocument(doc *yaml.Node) []error {
	c := &checker{}
	n := doc
	if n.Kind == 0 {
		return nil // empty file
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil // empty file
		}
		n = n.Content[0]
	}
	c.check(n, reflect.TypeFor[Config](), nil)
	return c.errs
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!int":
		return "the number " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return n.Value + " (" + strings.TrimPrefix(n.ShortTag(), "!!") + ")"
}

func (c *checker) check(n *yaml.Node, t reflect.Type, p keyPath) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // same as absent
	}
	switch {
	case isLeaf(t):
		c.checkLeaf(n, t, p)
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.addf(n, p, "expected a mapping of keys, got %s", describe(n))
			return
		}
		fields := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // YAML merge key
				for v.Kind == yaml.AliasNode {
					v = v.Alias
				}
				if v.Kind == yaml.SequenceNode {
					for _, m := range v.Content {
						c.check(m, t, p)
					}
				} else {
					c.check(v, t, p)
				}
				continue
			}
			f, ok := findField(fields, k.Value)
			if !ok {
				c.unknownKey(k, p.key(k.Value), fields)
				continue
			}
			c.check(v, f.typ, p.key(k.Value))
		}
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		if n.Kind != yaml.MappingNode {
			c.addf(n, p, "expected a mapping of names, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if !namePattern.MatchString(k.Value) {
				c.addf(k, p.key(k.Value), "invalid name %q: %s", k.Value, nameRule)
			}
			c.check(v, t.Elem(), p.key(k.Value))
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.addf(n, p, "expected a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), p.index(i))
		}
	default:
		c.addf(n, p, "internal error: no schema for %s", t)
	}
}

func findField(fields []schemaField, name string) (schemaField, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return schemaField{}, false
}

func (c *checker) unknownKey(k *yaml.Node, p keyPath, fields []schemaField) {
	msg := fmt.Sprintf("unknown key %q", p.String())
	best, bestDist := "", 3
	for _, f := range fields {
		if strings.EqualFold(f.name, k.Value) {
			best = f.name
			break
		}
		if d := editDistance(f.name, strings.ToLower(k.Value)); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	var hint []string
	if k.Line > 0 {
		hint = append(hint, fmt.Sprintf("line %d", k.Line))
	}
	if best != "" {
		hint = append(hint, fmt.Sprintf("did you mean %q?", best))
	}
	if len(hint) > 0 {
		msg += " (" + strings.Join(hint, "; ") + ")"
	}
	c.errs = append(c.errs, fmt.Errorf("%s", msg))
}

func (c *checker) checkLeaf(n *yaml.Node, t reflect.Type, p keyPath) {
	if t == stringsType {
		switch {
		case n.Kind == yaml.SequenceNode:
			for i, item := range n.Content {
				for item.Kind == yaml.AliasNode {
					item = item.Alias
				}
				if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
					c.addf(item, p.index(i), "expected a string, got %s", describe(item))
				}
			}
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
			// comma separated
		default:
			c.addf(n, p, "expected a list of strings, got %s", describe(n))
		}
		return
	}
	if n.Kind != yaml.ScalarNode {
		c.addf(n, p, "expected a single value, got %s", describe(n))
		return
	}
	tag := n.ShortTag()
	switch {
	case t == durationType:
		switch tag {
		case "!!str":
			if _, err := time.ParseDuration(n.Value); err != nil {
				c.addf(n, p, "invalid duration %q (want e.g. \"500ms\", \"10s\", \"1m30s\")", n.Value)
			}
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil || i != 0 {
				c.addf(n, p, "duration %s needs a unit, e.g. \"%ss\" or \"%sms\"", n.Value, n.Value, n.Value)
			}
		default:
			c.addf(n, p, "expected a duration such as \"500ms\", got %s", describe(n))
		}
	case t == byteSizeType:
		switch tag {
		case "!!str":
			if _, err := ParseByteSize(n.Value); err != nil {
				c.addf(n, p, "%v", err)
			}
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil || i < 0 {
				c.addf(n, p, "invalid byte size %s", n.Value)
			}
		default:
			c.addf(n, p, "expected a byte size such as 67108864 or \"64MiB\", got %s", describe(n))
		}
	case t.Kind() == reflect.String:
		if tag != "!!str" {
			c.addf(n, p, "expected a string, got %s (quote it if you mean the text: %q)", describe(n), n.Value)
		}
	case t.Kind() == reflect.Bool:
		if tag != "!!bool" {
			c.addf(n, p, "expected true or false, got %s", describe(n))
		}
	default: // integers
		if tag != "!!int" {
			c.addf(n, p, "expected a whole number, got %s", describe(n))
			return
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			c.addf(n, p, "number %s out of range", n.Value)
		}
	}
}

// editDistance is the Levenshtein distance, for "did you mean" hints.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envVar is one overridable scalar key and its environment variable.
type envVar struct {
	name string
	path keyPath
	typ  reflect.Type
}

// envVars lists the environment overrides of the schema type t, given the
// raw settings (viper's merged map) for the map names and list lengths that
// exist.
func envVars(t reflect.Type, raw any, p keyPath, out *[]envVar) {
	switch {
	case isLeaf(t):
		*out = append(*out, envVar{p.env(), p, t})
	case t.Kind() == reflect.Struct:
		m, _ := raw.(map[string]any)
		for _, f := range fieldsOf(t) {
			envVars(f.typ, m[f.name], p.key(f.name), out)
		}
	case t.Kind() == reflect.Map:
		m, _ := raw.(map[string]any)
		names := make([]string, 0, len(m))
		for name := range m {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			envVars(t.Elem(), m[name], p.key(name), out)
		}
	case t.Kind() == reflect.Slice:
		s, _ := raw.([]any)
		for i := range s {
			envVars(t.Elem(), s[i], p.index(i), out)
		}
	}
}

// parseEnv converts an environment value to the Go type of its key.
func parseEnv(t reflect.Type, s string) (any, error) {
	switch {
	case t == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q (want e.g. \"500ms\", \"10s\")", s)
		}
		return d, nil
	case t == byteSizeType:
		return ParseByteSize(s)
	case t == stringsType:
		return splitList(s), nil
	}
	switch t.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("expected true or false, got %q", s)
		}
		return b, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return nil, fmt.Errorf("expected a whole number, got %q", s)
		}
		return reflect.ValueOf(i).Convert(t).Interface(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return nil, fmt.Errorf("expected a whole number, got %q", s)
		}
		return reflect.ValueOf(i).Convert(t).Interface(), nil
	}
	return nil, fmt.Errorf("internal error: cannot parse %s", t)
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(s string) []string {
	out := []string{}
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
