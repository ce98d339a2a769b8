//go:build unix

package decisionlog

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock on f (flock), held until f is
// closed or the process dies: it marks a WAL segment as owned by a live
// writer.
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// tryLock reports whether it took the lock (false: held elsewhere).
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
