package labconf

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports handed out by FreePort are bound later by another process (NSD,
// Unbound, BIND, Caddy), so between the pick and the bind anything else
// may take them. Two things did, in CI:
//
//   - the kernel, for the source port of an outgoing TCP connection: a
//     load test that opens a connection per request walks the whole
//     ephemeral range, and a Caddy admin port picked there was taken
//     ("bind: address already in use");
//   - another test process picking the same port in the same window.
//
// So FreePort picks outside the kernel's ephemeral range (where the kernel
// never auto-binds), the lab's Unbound is told to avoid that range for its
// outgoing queries (Unbound.Config), and every port handed out stays
// reserved, for the life of the process, by an exclusive lock on a file
// named after it that other test processes honour.

var (
	rangeOnce        sync.Once
	rangeLo, rangeHi int
)

// PortRange is the range FreePort picks from: the largest stretch of
// 10000-65535 outside the kernel's ephemeral range (net.ipv4.
// ip_local_port_range; 32768-60999 by default, which gives 10000-32767).
func PortRange() (lo, hi int) {
	rangeOnce.Do(func() { rangeLo, rangeHi = portRange(readEphemeral()) })
	return rangeLo, rangeHi
}

// readEphemeral returns the kernel's ephemeral range, or Linux's default
// when it cannot be read.
func readEphemeral() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}

// portRange picks the larger of the stretches of 10000-65535 below and
// above the ephemeral range [elo, ehi]. With an ephemeral range that
// leaves neither 1000 ports, it returns 10000-65535 and collisions with
// outgoing connections are possible again.
func portRange(elo, ehi int) (lo, hi int) {
	const floor, ceil = 10000, 65535
	below := [2]int{floor, min(elo-1, ceil)}
	above := [2]int{max(ehi+1, floor), ceil}
	best := below
	if above[1]-above[0] > below[1]-below[0] {
		best = above
	}
	if best[1]-best[0] < 1000 {
		return floor, ceil
	}
	return best[0], best[1]
}

// FreePort returns a port in PortRange that is free on 127.0.0.1 for both
// UDP and TCP (a DNS server needs both) and reserved for this process: no
// other FreePort, in this process or another, returns it again.
func FreePort() (int, error) {
	lo, hi := PortRange()
	n := hi - lo + 1
	start := rand.IntN(n)
	for i := range min(n, 2000) {
		port := lo + (start+i)%n
		if !reserve(port) {
			continue
		}
		if bindable(port) {
			return port, nil
		}
		// In use by a process that does not reserve: keep the reservation,
		// so this process does not try it again, and go on.
	}
	return 0, fmt.Errorf("no port free for both UDP and TCP in %d-%d", lo, hi)
}

func bindable(port int) bool {
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer pc.Close()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
