package zonekit

import (
	"fmt"

	"github.com/miekg/dns"
)

// Delegate makes child a delegation of parent (RFC 4033 §2): it copies the
// child's apex NS RRset and the addresses of name servers inside the child
// (glue) into the parent and, unless the child is unsigned, the child's DS
// RRset. Call it before signing the parent, after choosing the child's
// algorithm.
func Delegate(parent, child *Zone) error {
	if child.origin == parent.origin || !dns.IsSubDomain(parent.origin, child.origin) {
		return fmt.Errorf("zonekit: %s is not below %s", child.origin, parent.origin)
	}
	child.mu.RLock()
	var rrs []dns.RR
	for _, ns := range child.data[child.origin][dns.TypeNS] {
		rrs = append(rrs, ns)
		target := ns.(*dns.NS).Ns
		if dns.IsSubDomain(child.origin, target) {
			rrs = append(rrs, child.data[dns.CanonicalName(target)][dns.TypeA]...)
			rrs = append(rrs, child.data[dns.CanonicalName(target)][dns.TypeAAAA]...)
		}
	}
	unsigned := child.unsigned
	child.mu.RUnlock()
	if !unsigned {
		for _, ds := range child.DS() {
			rrs = append(rrs, ds)
		}
	}
	return parent.AddRR(rrs...)
}
