package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

type runResult struct {
	Mode          string
	Round         int
	Side          string
	RPS           float64
	P50, P99      time.Duration
	Errors        int64
	UpstreamConns int64 // TLS connections the upstream accepted during the run
	UpstreamH2    int64 // requests the upstream received over HTTP/2
	// Requests the upstream served, and how many came on a resumed TLS
	// session; with keep-alive off, UpstreamConns/UpstreamRequests is the
	// number of handshakes per proxied request (in-flight requests at the
	// end of a run make it slightly above 1 even when nothing is wasted).
	UpstreamRequests int64
	UpstreamResumed  int64
	Load             string
}

type rssResult struct {
	Side             string
	VmHWMKeepAliveKB int64
}

type floodResult struct {
	Requests, OK, Failed int
	FirstError           string `json:",omitempty"`
	Elapsed              string
	QueriesPerRRset      map[string]int
}

type delvResult struct {
	Name             string
	Runs             int
	DelvMedian       time.Duration
	DelvMin, DelvMax time.Duration
	InProcMedian     time.Duration // fresh validator per run, Unbound cache warm
	InProcMin        time.Duration
	InProcMax        time.Duration
	CLIMedian        time.Duration // `caddy dane lookup`, a process per run like delv
	CLIMin, CLIMax   time.Duration
	Error            string `json:",omitempty"`
}

type report struct {
	Rounds     int
	Duration   string
	Conns      int
	Start, End string // load averages
	Runs       []runResult
	RSS        []rssResult
	Flood      *floodResult `json:",omitempty"`
	Delv       *delvResult  `json:",omitempty"`
}

type spread struct{ Min, Median, Max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{s[0], m, s[len(s)-1]}
}

func (s spread) String() string {
	return fmt.Sprintf("%.3f (min %.3f, max %.3f)", s.Median, s.Min, s.Max)
}

// ratios returns, per round, f(side)/f(stock-1) and the A/A ratio
// f(stock-2)/f(stock-1).
func (r *report) ratios(mode, side string, f func(runResult) float64) (ab, aa []float64) {
	by := map[int]map[string]runResult{}
	for _, run := range r.Runs {
		if run.Mode != mode {
			continue
		}
		if by[run.Round] == nil {
			by[run.Round] = map[string]runResult{}
		}
		by[run.Round][run.Side] = run
	}
	for round := 1; round <= r.Rounds; round++ {
		m := by[round]
		base := f(m["stock-1"])
		if base == 0 {
			continue
		}
		if _, ok := m[side]; !ok {
			continue
		}
		ab = append(ab, f(m[side])/base)
		aa = append(aa, f(m["stock-2"])/base)
	}
	return ab, aa
}

var (
	loadModes = []struct{ mode, label string }{{"keepalive", "keep-alive"}, {"handshake", "new handshake per request, HTTP/1.1"}, {"handshake-h2", "new handshake per request, h2 offered"}}
	daneSides = []struct{ side, label string }{{"dane", "dane (resumption on)"}, {"dane-full", "dane-full (resumption off)"}}
)

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n== caddy-dane vs stock Caddy: %d rounds × %s, wrk -c%d; load avg start %s, end %s\n",
		r.Rounds, r.Duration, r.Conns, r.Start, r.End)
	fmt.Fprintf(w, "%-76s %-34s %-34s\n", "measure (side/stock-1 per round)", "median (min, max)", "A/A stock-2/stock-1")
	rps := func(x runResult) float64 { return x.RPS }
	p99 := func(x runResult) float64 { return float64(x.P99) }
	for _, m := range loadModes {
		for _, d := range daneSides {
			ab, aa := r.ratios(m.mode, d.side, rps)
			if len(ab) == 0 {
				continue
			}
			fmt.Fprintf(w, "%-76s %-34s %-34s\n", "req/s, "+m.label+", "+d.label, spreadOf(ab), spreadOf(aa))
			ab, aa = r.ratios(m.mode, d.side, p99)
			fmt.Fprintf(w, "%-76s %-34s %-34s\n", "p99 latency, "+m.label+", "+d.label, spreadOf(ab), spreadOf(aa))
		}
	}
	fmt.Fprintln(w, "\nabsolute medians:")
	for _, m := range loadModes {
		for _, side := range []string{"stock-1", "stock-2", "dane", "dane-full"} {
			var rps, p50, p99, conns, perReq, resumed []float64
			var errs int64
			for _, run := range r.Runs {
				if run.Mode == m.mode && run.Side == side {
					rps = append(rps, run.RPS)
					p50 = append(p50, float64(run.P50))
					p99 = append(p99, float64(run.P99))
					conns = append(conns, float64(run.UpstreamConns))
					if run.UpstreamRequests > 0 {
						perReq = append(perReq, float64(run.UpstreamConns)/float64(run.UpstreamRequests))
						resumed = append(resumed, float64(run.UpstreamResumed)/float64(run.UpstreamRequests))
					}
					errs += run.Errors
				}
			}
			if len(rps) == 0 {
				continue
			}
			fmt.Fprintf(w, "  %-12s %-9s %8.0f req/s (min %.0f, max %.0f)  p50 %-9v p99 %-9v upstream conns/run %.0f, per request %.3f (max %.3f), resumed %.2f  errors %d\n",
				m.mode, side, spreadOf(rps).Median, spreadOf(rps).Min, spreadOf(rps).Max,
				time.Duration(spreadOf(p50).Median).Round(time.Microsecond), time.Duration(spreadOf(p99).Median).Round(time.Microsecond),
				spreadOf(conns).Median, spreadOf(perReq).Median, spreadOf(perReq).Max, spreadOf(resumed).Median, errs)
		}
	}
	if len(r.RSS) >= 3 && r.RSS[0].VmHWMKeepAliveKB > 0 {
		base := float64(r.RSS[0].VmHWMKeepAliveKB)
		fmt.Fprintln(w, "\npeak RSS (VmHWM) after the keep-alive phase:")
		for _, s := range r.RSS {
			fmt.Fprintf(w, "  %-7s %7d kB  (%.3f× stock-1)\n", s.Side, s.VmHWMKeepAliveKB, float64(s.VmHWMKeepAliveKB)/base)
		}
	}
	if f := r.Flood; f != nil {
		fmt.Fprintf(w, "\n%d concurrent first requests through a fresh dane instance: %d ok, %d failed in %s\n", f.Requests, f.OK, f.Failed, f.Elapsed)
		if f.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", f.FirstError)
		}
		keys := make([]string, 0, len(f.QueriesPerRRset))
		for k := range f.QueriesPerRRset {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  queries %-50s %d\n", k, f.QueriesPerRRset[k])
		}
	}
	if d := r.Delv; d != nil {
		fmt.Fprintf(w, "\ncold TLSA lookup+validation, 3-zone chain, via NSD + Unbound (resolver cache warm), %d runs each: %s\n", d.Runs, d.Name)
		if d.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", d.Error)
		} else {
			fmt.Fprintf(w, "  delv (process)              median %-10v min %-10v max %v\n", d.DelvMedian, d.DelvMin, d.DelvMax)
			fmt.Fprintf(w, "  caddy dane lookup (process) median %-10v min %-10v max %v  ratio %.3f\n", d.CLIMedian, d.CLIMin, d.CLIMax, float64(d.CLIMedian)/float64(d.DelvMedian))
			fmt.Fprintf(w, "  caddy-dane in process       median %-10v min %-10v max %v  ratio %.3f\n", d.InProcMedian, d.InProcMin, d.InProcMax, float64(d.InProcMedian)/float64(d.DelvMedian))
		}
	}
}
