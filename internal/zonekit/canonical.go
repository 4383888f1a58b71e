package zonekit

import (
	"bytes"

	"github.com/miekg/dns"
)

// CompareNames orders two domain names canonically (RFC 4034 §6.1): label by
// label from the root, each label compared as a case-folded byte string, a
// name sorting before its descendants. It returns -1, 0 or +1.
func CompareNames(a, b string) int {
	la, lb := wireLabels(a), wireLabels(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := bytes.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	switch {
	case len(la) < len(lb):
		return -1
	case len(la) > len(lb):
		return 1
	}
	return 0
}

// wireLabels returns the lower-cased, unescaped labels of name, leftmost
// first. A name that does not pack yields no labels (it sorts as the root).
func wireLabels(name string) [][]byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.CanonicalName(name), buf, 0, nil, false)
	if err != nil {
		return nil
	}
	buf = buf[:n]
	var labels [][]byte
	for off := 0; off < len(buf) && buf[off] != 0; {
		l := int(buf[off])
		if off+1+l > len(buf) {
			break
		}
		labels = append(labels, bytes.ToLower(buf[off+1:off+1+l]))
		off += 1 + l
	}
	return labels
}
