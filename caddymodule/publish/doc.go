// Package publish keeps the TLSA RRsets of a server in step with the keys it
// serves, through a libdns provider, and rolls keys over as RFC 7671 §8.1
// "current + next" asks: a new key's records join the RRset next to the
// current ones, and a server may present the new key only once a validating
// client has seen them for at least twice the TTL; a record leaves the
// RRset only when nothing has needed it for twice the TTL.
//
// "Needed" is decided by the caller (the certificates it serves and holds in
// storage) and by the other instances that share the same storage: each
// instance writes a heartbeat with the records its certificates need, and
// every change of an RRset is made under a storage lock named after its
// owner, so that instances sharing one storage (certmagic's way to scale
// out) never undo each other's changes. The per-owner state (when each
// record was last needed, the keys held back for a pending renewal) lives in
// the same storage.
//
// The package has no Caddy dependency: Storage is the part of
// certmagic.Storage it uses, and the DNS provider is any libdns provider
// that can read the zone and either set an RRset or append and delete
// records.
package publish
