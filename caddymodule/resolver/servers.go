package resolver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ParseServer normalizes a resolver address to "host:port", the form Client
// wants. The host must be an IP literal: resolving the resolver's own name
// would need a resolver. The port defaults to 53.
//
//	"127.0.0.1"          → "127.0.0.1:53"
//	"127.0.0.1:5300"     → "127.0.0.1:5300"
//	"::1", "[::1]"       → "[::1]:53"
//	"[::1]:53"           → "[::1]:53"
//	"fe80::1%eth0"       → "[fe80::1%eth0]:53"
//	"::ffff:192.0.2.1"   → "192.0.2.1:53"
func ParseServer(s string) (string, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("dns: resolver address %q: empty", in)
	}
	if a, err := parseAddr(s); err == nil {
		return join(a, 53), nil
	} else if _, perr := netip.ParseAddr(s); perr == nil {
		return "", fmt.Errorf("dns: resolver address %q: %v", in, err) // bad zone
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		a, err := parseAddr(s[1 : len(s)-1])
		if err != nil {
			return "", fmt.Errorf("dns: resolver address %q: %q is not an IP address", in, s[1:len(s)-1])
		}
		return join(a, 53), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if !strings.ContainsAny(s, ":[]") {
			return "", fmt.Errorf("dns: resolver address %q: not an IP address (host names are not accepted)", in)
		}
		return "", fmt.Errorf("dns: resolver address %q: %v", in, err)
	}
	a, err := parseAddr(host)
	if err != nil {
		return "", fmt.Errorf("dns: resolver address %q: %q is not an IP address (host names are not accepted)", in, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("dns: resolver address %q: bad port %q (want 1-65535)", in, port)
	}
	return join(a, uint16(p)), nil
}

// parseAddr parses an IP address; an IPv6 zone must look like an
// interface name or index (netip accepts any bytes there, which would
// make "host:port" ambiguous).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, err
	}
	for _, r := range a.Zone() {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return netip.Addr{}, fmt.Errorf("bad IPv6 zone %q", a.Zone())
		}
	}
	return a, nil
}

func join(a netip.Addr, port uint16) string {
	if a.Is4In6() {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, port).String()
}

// ServersFromResolvConf returns the resolvers of a resolv.conf(5) file as
// "ip:53", in file order. Like the C library it takes the address from
// each "nameserver" line (IPv6 with a zone, "fe80::1%eth0", included),
// ignores comments ('#' or ';') and skips entries that are not IP
// addresses; unlike it, it does not stop at three. It fails if the file
// cannot be read or names no usable resolver.
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dns: reading resolvers: %w", err)
	}
	defer f.Close()
	servers, skipped, err := parseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("dns: reading resolvers from %s: %w", path, err)
	}
	if len(servers) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("dns: no usable nameserver in %s (skipped %s)", path, strings.Join(skipped, ", "))
		}
		return nil, fmt.Errorf("dns: no nameserver in %s", path)
	}
	return servers, nil
}

// parseResolvConf returns the servers of the nameserver lines and a
// description of each skipped line.
func parseResolvConf(r io.Reader) (servers, skipped []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "nameserver" {
			continue
		}
		if len(f) < 2 {
			skipped = append(skipped, fmt.Sprintf("line %d: nameserver without address", n))
			continue
		}
		a, err := parseAddr(f[1])
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("line %d: %q is not an IP address", n, f[1]))
			continue
		}
		servers = append(servers, join(a, 53))
	}
	return servers, skipped, sc.Err()
}
