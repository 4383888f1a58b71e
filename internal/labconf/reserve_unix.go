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
	reserved  = map[int]*os.File{} // open, locked (the lock lives as long as the file), or nil: no lock file
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
	var f *os.File
	err := os.MkdirAll(dir, 0o777)
	if err == nil {
		f, err = os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	}
	if err != nil {
		// No shared directory: reserved in this process only, and the bind
		// check alone guards against the others.
		reserved[port] = nil
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reserved[port] = f
	return true
}
