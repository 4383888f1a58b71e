package dnssec

import "context"

// Prover proves, or disproves, one RRset. *Validator validates in process
// from the trust anchors; *TrustResolver takes the proof from the AD bit of
// a validating resolver the operator runs on the same host (the
// "dnssec trust_resolver" mode). Callers hold a Prover, never one of the
// two concretely, so that both modes go through the same code above them.
type Prover interface {
	Lookup(ctx context.Context, name string, qtype uint16) *Result
}

var (
	_ Prover = (*Validator)(nil)
	_ Prover = (*TrustResolver)(nil)
)
