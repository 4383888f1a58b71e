//go:build !unix

package labconf

import "sync"

var (
	reserveMu sync.Mutex
	reserved  = map[int]bool{}
)

// reserve keeps a port from being handed out twice in this process; without
// flock there is no reservation across processes.
func reserve(port int) bool {
	reserveMu.Lock()
	defer reserveMu.Unlock()
	if reserved[port] {
		return false
	}
	reserved[port] = true
	return true
}
