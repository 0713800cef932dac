package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// verifySocketMode is the verify socket's permissions (--verify-socket):
// the portal's user and group may connect, nobody else. They are the
// socket's access control, since whoever connects is trusted as the
// proxy (server/socket.go): put the proxy's user in the portal's group.
const verifySocketMode = 0o660

// maxSocketPath is the longest path a Unix socket may have on Linux
// (sun_path holds 108 bytes, the last a NUL).
const maxSocketPath = 107

// checkVerifySocket refuses a --verify-socket path that exists and is
// not a socket: the portal never removes a file it did not make. serve
// runs it before anything else, so a wrong path is refused at once.
func checkVerifySocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--verify-socket %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("--verify-socket %s: the path exists and is not a socket (%s); the portal removes only a socket left by an earlier run: remove the file yourself or choose another path", path, describeFileType(fi.Mode()))
	}
	return nil
}

// describeFileType names a file's type in plain words.
func describeFileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m.Type()&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return "a file of type " + m.Type().String()
	}
}

// listenVerifySocket listens on a Unix socket at path, mode
// verifySocketMode, for a proxy's auth subrequests. A socket file left
// by an earlier run is removed; one that a live process still listens on
// is not (two portals on one socket is a mistake to report, not to
// hide). Closing the listener removes the socket file.
//
// The socket is made in a private directory (mode 0700) beside path,
// given its mode there, then linked into place: nobody can connect to it
// before its mode is set, whatever the umask, and a link never replaces
// a file that appeared at path meanwhile (another portal starting at the
// same moment is refused, not silently cut off).
func listenVerifySocket(path string) (net.Listener, error) {
	if err := checkVerifySocket(path); err != nil {
		return nil, err
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("--verify-socket %s: a socket's path may have at most %d bytes; choose a shorter one (such as /run/gatehouse/verify.sock)", path, maxSocketPath)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".gh")
	if err != nil {
		return nil, fmt.Errorf("--verify-socket %s: make the socket beside it: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("--verify-socket %s: the path is too long to make the socket beside it (%s); choose a shorter one", path, tmp)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("--verify-socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // the file is at path by then; Close removes it
	if err := os.Chmod(tmp, verifySocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("--verify-socket %s: set its mode: %w", path, err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		ln.Close()
		return nil, fmt.Errorf("--verify-socket %s: another socket appeared there while this one was made (another portal starting?); stop it or choose another path", path)
	} else if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--verify-socket %s: %w", path, err)
	}
	own, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("--verify-socket %s: %w", path, err)
	}
	return &socketListener{UnixListener: ln, path: path, own: own}, nil
}

// removeStaleSocket removes the socket file at path, if any, when no
// process listens on it.
func removeStaleSocket(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("--verify-socket %s: another process listens on this socket (another portal?); stop it or choose another path", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listens: left by a portal that did not stop cleanly.
	default:
		return fmt.Errorf("--verify-socket %s: cannot tell whether the socket there is still in use: %w", path, err)
	}
	// Only a socket is ever removed, even if the file changed since.
	if err := checkVerifySocket(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--verify-socket %s: remove the socket left by an earlier run: %w", path, err)
	}
	return nil
}

// socketListener is the verify socket's listener: closing it removes
// the socket file, so a stopped portal leaves none behind — its own file
// only, never one another portal has put at the same path since.
type socketListener struct {
	*net.UnixListener
	path string
	own  fs.FileInfo
	once sync.Once
	err  error
}

func (l *socketListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		if fi, err := os.Lstat(l.path); err != nil || !os.SameFile(fi, l.own) {
			return
		}
		if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) && l.err == nil {
			l.err = err
		}
	})
	return l.err
}
