package clientaddr

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestResolve(t *testing.T) {
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	cases := []struct {
		name   string
		peer   string
		header map[string][]string
		want   string
	}{
		{"untrusted peer ignores headers", "203.0.113.9:4000", map[string][]string{"X-Forwarded-For": {"1.2.3.4"}}, "203.0.113.9"},
		{"untrusted peer ignores Forwarded", "203.0.113.9:4000", map[string][]string{"Forwarded": {"for=1.2.3.4"}}, "203.0.113.9"},
		{"trusted peer, no header", "10.0.0.1:4000", nil, "10.0.0.1"},
		{"one proxy", "10.0.0.1:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.7"}}, "198.51.100.7"},
		{"client's forged hops are left of the real one", "10.0.0.1:4000",
			map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7"}}, "198.51.100.7"},
		{"two trusted proxies", "10.0.0.1:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.7, 10.1.1.1"}}, "198.51.100.7"},
		{"several header lines", "10.0.0.1:4000", map[string][]string{"X-Forwarded-For": {"6.6.6.6", "198.51.100.7, 10.2.2.2"}}, "198.51.100.7"},
		{"garbage hop stops at the proxy that wrote it", "10.0.0.1:4000", map[string][]string{"X-Forwarded-For": {"1.2.3.4, nonsense"}}, "10.0.0.1"},
		{"all hops trusted", "10.0.0.1:4000", map[string][]string{"X-Forwarded-For": {"10.3.3.3, 10.2.2.2"}}, "10.3.3.3"},
		{"Forwarded", "10.0.0.1:4000", map[string][]string{"Forwarded": {`for=6.6.6.6, for="[2001:db8::1]:443";proto=https`}}, "2001:db8::1"},
		{"Forwarded unknown", "10.0.0.1:4000", map[string][]string{"Forwarded": {"for=1.2.3.4, for=unknown"}}, "10.0.0.1"},
		{"Forwarded element without for", "10.0.0.1:4000", map[string][]string{"Forwarded": {"for=1.2.3.4, proto=http"}}, "10.0.0.1"},
		{"X-Forwarded-For wins over a forged Forwarded", "10.0.0.1:4000",
			map[string][]string{"Forwarded": {"for=6.6.6.6"}, "X-Forwarded-For": {"198.51.100.7"}}, "198.51.100.7"},
		{"IPv6 trusted peer", "[::1]:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.7"}}, "198.51.100.7"},
		{"mapped IPv4 hop", "10.0.0.1:4000", map[string][]string{"X-Forwarded-For": {"::ffff:198.51.100.7"}}, "198.51.100.7"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = c.peer
		for k, v := range c.header {
			req.Header[k] = v
		}
		if got := r.Resolve(req).String(); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestWrapAndString(t *testing.T) {
	r := New(nil)
	var got string
	h := r.Wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got = String(req.Context(), "ignored:1")
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got != "192.0.2.1" {
		t.Errorf("in the handler: %s, want the peer", got)
	}
	if s := String(context.Background(), "192.0.2.2:99"); s != "192.0.2.2" {
		t.Errorf("without Wrap: %s", s)
	}
}

// TestConnContext serves over a real connection whose context carries the
// peer (ConnContext): a trusted proxy's headers are still honoured per
// request, an untrusted peer's are not.
func TestConnContext(t *testing.T) {
	for _, c := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "198.51.100.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := New(c.trusted)
			var got string
			srv := httptest.NewUnstartedServer(r.Wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				got = String(req.Context(), "")
			})))
			srv.Config.ConnContext = r.ConnContext
			srv.Start()
			defer srv.Close()
			for range 2 { // a second request on the same connection resolves alike
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				req.Header.Set("X-Forwarded-For", "198.51.100.7")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got != c.want {
					t.Fatalf("client address %q, want %q", got, c.want)
				}
			}
		})
	}
}
