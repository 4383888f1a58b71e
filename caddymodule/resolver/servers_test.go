package resolver

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseServer(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "127.0.0.1", want: "127.0.0.1:53"},
		{in: " 127.0.0.1 ", want: "127.0.0.1:53"},
		{in: "127.0.0.1:5300", want: "127.0.0.1:5300"},
		{in: "[::1]:53", want: "[::1]:53"},
		{in: "::1", want: "[::1]:53"},
		{in: "[::1]", want: "[::1]:53"},
		{in: "[2001:DB8::1]:853", want: "[2001:db8::1]:853"},
		{in: "fe80::1%eth0", want: "[fe80::1%eth0]:53"},
		{in: "[fe80::1%eth0]:5353", want: "[fe80::1%eth0]:5353"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1:53"},
		{in: "[192.0.2.1]:53", want: "192.0.2.1:53"},
		{in: "", wantErr: "empty"},
		{in: "dns.example", wantErr: "not an IP address (host names are not accepted)"},
		{in: "dns.example:53", wantErr: `"dns.example" is not an IP address`},
		{in: "localhost:53", wantErr: `"localhost" is not an IP address`},
		{in: "127.0.0.1:99999", wantErr: `bad port "99999"`},
		{in: "127.0.0.1:0", wantErr: `bad port "0"`},
		{in: "127.0.0.1:", wantErr: `bad port ""`},
		{in: "127.0.0.1:domain", wantErr: `bad port "domain"`},
		{in: "127.0.0.1:+53", wantErr: `bad port "+53"`},
		{in: "[::1]:-1", wantErr: `bad port "-1"`},
		{in: "::1:53:x", wantErr: "too many colons"},
		{in: "[dns.example]", wantErr: `"dns.example" is not an IP address`},
		{in: "1.2.3.4%eth0", wantErr: "not an IP address"},
		{in: "::%]0", wantErr: `bad IPv6 zone "]0"`},
	}
	for _, tt := range tests {
		got, err := ParseServer(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseServer(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseServer(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestServersFromResolvConf(t *testing.T) {
	tests := []struct {
		name, conf string
		want       []string
		wantErr    string
	}{
		{
			name: "typical",
			conf: "# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53 # v6\noptions edns0 trust-ad\n",
			want: []string{"192.0.2.53:53", "[2001:db8::53]:53"},
		},
		{
			name: "scoped IPv6, tabs, comments",
			conf: "nameserver\tfe80::1%eth0\n; nameserver 10.0.0.1\n#nameserver 10.0.0.2\nnameserver 10.0.0.3;x\n",
			want: []string{"[fe80::1%eth0]:53", "10.0.0.3:53"},
		},
		{
			name: "more than three kept, bad entries skipped",
			conf: "nameserver 10.0.0.1\nnameserver dns.example\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver 127.0.0.1:5300\n",
			want: []string{"10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53", "10.0.0.4:53"},
		},
		{
			name:    "only bad entries",
			conf:    "nameserver dns.example\nnameserver\n",
			wantErr: `no usable nameserver in`,
		},
		{
			name:    "none",
			conf:    "search example.com\n",
			wantErr: "no nameserver in",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ServersFromResolvConf(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ServersFromResolvConf(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

// checkServer asserts what every accepted address must satisfy: it is
// "ip:port" with a non-zero port, and normalizing it again changes nothing.
func checkServer(t *testing.T, in, s string) {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		t.Fatalf("%q → %q: not ip:port (%v)", in, s, err)
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		t.Fatalf("%q → %q: net.SplitHostPort: %v", in, s, err)
	}
	again, err := ParseServer(s)
	if err != nil || again != s {
		t.Fatalf("%q → %q → %q, %v: not idempotent", in, s, again, err)
	}
}

func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "127.0.0.1:5300", "[::1]:53", "::1", "fe80::1%eth0",
		"[fe80::1%en0]:1", "dns.example:53", "::ffff:1.2.3.4", "[", "]:", "1.2.3.4:65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseServer(in)
		if err != nil {
			if s != "" {
				t.Fatalf("%q: error %v with result %q", in, err, s)
			}
			return
		}
		checkServer(t, in, s)
	})
}

func FuzzServersFromResolvConf(f *testing.F) {
	f.Add("nameserver 127.0.0.1\nnameserver ::1\n")
	f.Add("nameserver fe80::1%eth0 # x\n;c\nsearch a b\n")
	f.Add("nameserver\nnameserver dns.example\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, conf string) {
		servers, skipped, err := parseResolvConf(strings.NewReader(conf))
		if err != nil {
			return // e.g. a line longer than the scanner allows
		}
		for _, s := range servers {
			checkServer(t, conf, s)
		}
		// The exported function agrees with the parser.
		path := filepath.Join(dir, "resolv.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ServersFromResolvConf(path)
		if (err == nil) != (len(servers) > 0) || (err == nil && !reflect.DeepEqual(got, servers)) {
			t.Fatalf("ServersFromResolvConf = %q, %v; parser: %q (skipped %q)", got, err, servers, skipped)
		}
	})
}
