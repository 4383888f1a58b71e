package publish

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseParams: any input is refused or yields parameters that
// round-trip and that Records can use.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"3 1 1", "2 1 1", "DANE-EE SPKI SHA2-512", "3 0 0", "1 1 1", "3 1", "255 255 255", "3 1 1 00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParams(s)
		if err != nil {
			return
		}
		q, err := ParseParams(p.String())
		if err != nil || q != p {
			t.Fatalf("%q → %v does not round-trip: %v, %v", s, p, q, err)
		}
	})
}

// FuzzPlan checks the rules of State.plan on arbitrary states: what is
// needed (or held) is always published, nothing older than 2×TTL since it
// was last needed is, and the result is sorted, unique and recorded.
func FuzzPlan(f *testing.F) {
	st := State{
		Records: map[string]Entry{rec(1): {LastNeeded: time.Unix(1000, 0)}, rec(2): {LastNeeded: time.Unix(400, 0)}},
		Holds:   []Hold{{ID: "h", Records: []string{rec(3)}, Until: time.Unix(2000, 0)}},
	}
	b, _ := json.Marshal(st)
	f.Add(b, rec(4), rec(1), uint16(300), uint16(60), int64(1100))
	f.Add([]byte(`{"records":{}}`), "", rec(5)+","+rec(5), uint16(0), uint16(1), int64(0))
	f.Fuzz(func(t *testing.T, stateJSON []byte, needed, inZone string, zoneTTL, ttl uint16, now int64) {
		var st State
		if json.Unmarshal(stateJSON, &st) != nil || ttl == 0 {
			return
		}
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		at := time.Unix(now, 0)
		held := map[string]bool{}
		for _, h := range st.Holds {
			if at.Before(h.Until) {
				for _, r := range h.Records {
					held[r] = true
				}
			}
		}
		need := split(needed)
		grace := time.Duration(zoneTTL%7) * time.Second
		got := st.plan(need, split(inZone), time.Duration(zoneTTL)*time.Second, time.Duration(ttl)*time.Second, grace, at)
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("plan = %v: not sorted and unique", got)
		}
		for _, r := range need {
			if !slices.Contains(got, r) {
				t.Fatalf("needed %q not published: %v", r, got)
			}
		}
		for r := range held {
			if !slices.Contains(got, r) {
				t.Fatalf("held %q not published: %v", r, got)
			}
		}
		keep := 2*st.waitTTL(time.Duration(ttl)*time.Second, at) + grace
		for _, r := range got {
			e, ok := st.Records[r]
			if !ok {
				t.Fatalf("published %q is not in the state", r)
			}
			if at.Sub(e.LastNeeded) >= keep {
				t.Fatalf("published %q last needed %s before now, beyond 2×TTL %s", r, at.Sub(e.LastNeeded), keep)
			}
		}
	})
}
