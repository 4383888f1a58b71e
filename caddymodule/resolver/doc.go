// Package resolver is the query function of the in-process DNSSEC
// validator: it sends one DNS message, as built by the caller, to the
// configured recursive resolvers and returns the first acceptable answer.
//
// The resolvers are not trusted for security: the caller sets DO and CD and
// validates every answer itself (package dnssec). What this package does
// guarantee is that an answer belongs to the question that was asked (RFC
// 5452 §9.1: transaction ID, source address and question must match), that
// a truncated UDP answer is retried over TCP (RFC 7766 §5), and that a
// query is bounded in time: each exchange by Client.Timeout, the whole
// query by the context.
//
// Errors are typed. A query whose every try timed out returns a
// *TimeoutError, which matches ErrTimeout with errors.Is; any other
// failure returns a *ServerError (one resolver) or an *AllFailedError
// (several), so that callers can tell "the resolvers are slow or
// unreachable" from "the resolvers answered, with an error".
package resolver
