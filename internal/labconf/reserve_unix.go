//go:build unix

package labconf

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

var (
	reserveMu sync.Mutex
	reserved  = map[int]*os.File{} // open, locked: the lock lives as long as the file
)

// reserve takes an exclusive, non-blocking flock on
// $TMPDIR/caddy-dane-ports/<port> and keeps the file open until the process
// exits (the kernel then drops the lock, even after a crash). It reports
// whether the port is now this process's, false when another process (or
// an earlier call in this one) holds it.
func reserve(port int) bool {
	reserveMu.Lock()
	defer reserveMu.Unlock()
	if _, ok := reserved[port]; ok {
		return false
	}
	dir := filepath.Join(os.TempDir(), "caddy-dane-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no shared directory: fall back to the bind check alone
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reserved[port] = f
	return true
}
