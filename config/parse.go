package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The environment variables tokend reads; ApplyEnv applies all but
// EnvPprofAddr, which main reads.
const (
	EnvAddr      = "TOKEND_ADDR"       // overrides addr
	EnvRedisURL  = "TOKEND_REDIS_URL"  // overrides redis.url
	EnvPprofAddr = "TOKEND_PPROF_ADDR" // serves Go's profiler on this address (unset: off)
	// EnvSigningKEK holds the key-encryption key of the signing keys in
	// Redis, when signing.kek_file is not set.
	EnvSigningKEK = "TOKEND_SIGNING_KEK"
)

// ApplyEnv applies the environment overrides TOKEND_ADDR,
// TOKEND_REDIS_URL and TOKEND_SIGNING_KEK (when signing.kek_file is not
// set) to c, read through getenv (nil: none); an empty value is
// no override. An issuer that was the default for the old addr follows the
// new one. Development mode calls it, starting from Default rather than a
// file; parse applies the same overrides, but leaves any issuer the file
// sets as it is (one the file does not set is derived afterwards, from the
// final addr).
func ApplyEnv(c *Config, getenv func(string) string) { applyEnv(c, getenv, true) }

func applyEnv(c *Config, getenv func(string) string, followIssuer bool) {
	if getenv == nil {
		return
	}
	if v := getenv(EnvAddr); v != "" {
		if followIssuer && c.Issuer == defaultIssuer(c.Addr) {
			c.Issuer = defaultIssuer(v)
		}
		c.Addr = v
	}
	if v := getenv(EnvRedisURL); v != "" {
		c.Redis.URL = v
	}
	if c.Signing.KEKFile == "" {
		c.Signing.KEK = getenv(EnvSigningKEK)
	}
}

// Load reads the YAML file at path and calls parse. Every error it returns
// starts with path.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := parse(data, getenv)
	if err != nil {
		return nil, prefix(path, err)
	}
	return c, nil
}

// prefix puts p in front of every error of a joined error, so that each line
// of its message names p.
func prefix(p string, err error) error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("%s: %w", p, err)
	}
	var errs []error
	for _, e := range j.Unwrap() {
		errs = append(errs, prefix(p, e))
	}
	return errors.Join(errs...)
}

// parse decodes YAML over Default(), strictly: unknown keys, values of the
// wrong type and bad durations are errors naming the key path and line. It
// then applies the environment overrides TOKEND_ADDR and TOKEND_REDIS_URL
// (read through getenv, which may be nil; an empty value is no override), sets
// what defaults on other settings (issuer from the final addr when the file
// sets none, access_token_lifetime defaultM2MLifetime),
// and validates. Errors are joined: every
// problem is reported.
func parse(data []byte, getenv func(string) string) (*Config, error) {
	if err := checkKeys(data); err != nil {
		return nil, err
	}
	c := Default()
	c.Issuer = ""
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && err != io.EOF {
		return nil, err // checkKeys should have caught it
	}
	applyEnv(&c, getenv, false)
	if c.Issuer == "" {
		c.Issuer = defaultIssuer(c.Addr)
	}
	var set struct {
		Clients []map[string]yaml.Node `yaml:"clients"`
	}
	_ = yaml.Unmarshal(data, &set) // decoded above already
	for i := range c.Clients {
		cl := &c.Clients[i]
		if i < len(set.Clients) && !has(set.Clients[i], "access_token_lifetime") {
			cl.AccessTokenLifetime = defaultM2MLifetime
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// defaultIssuer is http://addr, with a wildcard host read as localhost.
func defaultIssuer(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// checkKeys walks the YAML against Config's fields and reports, with key
// path and line, every unknown key, every value of the wrong shape or type,
// and every bad duration. yaml.v3's own KnownFields errors name Go types
// ("field x not found in type config.Redis"); these name keys.
func checkKeys(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil // empty: all defaults
	} else if err != nil {
		return err
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("line %d: a second YAML document; the configuration is one document", more.Line)
	}
	w := walker{seen: map[visit]bool{}}
	for _, n := range doc.Content {
		w.walk("", n, reflect.TypeFor[Config]())
	}
	return errors.Join(w.errs...)
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

type walker struct {
	errs []error
	seen map[visit]bool // aliases make a DAG: visit each node once per type
}

func (w *walker) fail(path string, n *yaml.Node, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	w.errs = append(w.errs, fmt.Errorf("%s: %s (line %d)", path, fmt.Sprintf(format, args...), n.Line))
}

var durationType = reflect.TypeFor[Duration]()

func (w *walker) walk(path string, n *yaml.Node, t reflect.Type) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if w.seen[visit{n, t}] {
		return
	}
	w.seen[visit{n, t}] = true
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // keeps the default
	}
	switch {
	case t == durationType:
		if _, err := parseDuration(n); err != nil {
			w.fail(path, n, "%v", err)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(path, n, "want a mapping of keys to values")
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" { // <<: *anchor
				if v.Kind == yaml.SequenceNode {
					for _, m := range v.Content {
						w.walk(path, m, t)
					}
				} else {
					w.walk(path, v, t)
				}
				continue
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok || k.Kind != yaml.ScalarNode {
				w.fail(p, k, "unknown key")
				continue
			}
			w.walk(p, v, ft)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(path, n, "want a list")
			return
		}
		for i, e := range n.Content {
			w.walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(path, n, "want %s", describe(t))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(path, n, "want %s, got %q", describe(t), n.Value)
		}
	}
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		max := uint64(math.MaxUint64) >> (64 - t.Bits())
		return fmt.Sprintf("a whole number in 0..%d", max)
	}
	return "a " + t.String()
}

// yamlFields maps the yaml keys of struct type t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func has(m map[string]yaml.Node, key string) bool { _, ok := m[key]; return ok }
