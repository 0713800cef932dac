package redisstore

import (
	"context"
	"net"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// connWatch follows where one client's connections go: the server its
// newest connection reached and how many of its connections to each
// server are open. Behind Sentinel the store's client has one (the
// cache's feed vouches only while it sits on the server that client
// uses: see Watch), and so has the feed's own client.
//
// It is a go-redis hook on the client's dial: go-redis's failover
// client asks Sentinel for the master's address and dials it there, and
// on +switch-master it closes its connections to any other server. Both
// show here: a new connection names the server, and a closed one is no
// longer counted.
type connWatch struct {
	mu     sync.Mutex
	newest string
	open   map[string]int
}

var _ redis.Hook = (*connWatch)(nil)

func newConnWatch() *connWatch { return &connWatch{open: make(map[string]int)} }

// DialHook counts each new connection of the client.
func (w *connWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return w.opened(cn), nil
	}
}

// ProcessHook leaves commands alone.
func (w *connWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

// ProcessPipelineHook leaves pipelines alone.
func (w *connWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// opened records cn and returns it wrapped so that its Close is seen.
func (w *connWatch) opened(cn net.Conn) net.Conn {
	addr := ""
	if ra := cn.RemoteAddr(); ra != nil {
		addr = ra.String()
	}
	w.mu.Lock()
	w.newest = addr
	w.open[addr]++
	w.mu.Unlock()
	c := &watchedConn{Conn: cn, w: w, addr: addr}
	// go-redis checks an idle connection's health through syscall.Conn
	// (and unwraps TLS through NetConn): keep both visible.
	if sc, ok := cn.(syscall.Conn); ok {
		return &watchedSyscallConn{watchedConn: c, sc: sc}
	}
	return c
}

// closed forgets one connection to addr.
func (w *connWatch) closed(addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open[addr]--; w.open[addr] <= 0 {
		delete(w.open, addr)
	}
}

// server returns the address of the server the newest connection
// reached ("" before the first).
func (w *connWatch) server() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.newest
}

// uses reports whether the client's newest connection reached addr and
// a connection to addr is still open: a read through the client now
// goes to that server. (After +switch-master the failover client has
// closed its connections to the old master, and its next read dials
// the new one, even before any new connection shows in newest.)
func (w *connWatch) uses(addr string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return addr != "" && w.newest == addr && w.open[addr] > 0
}

// watchedConn is a connection whose Close connWatch counts.
type watchedConn struct {
	net.Conn
	w    *connWatch
	addr string
	once sync.Once
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { c.w.closed(c.addr) })
	return c.Conn.Close()
}

// NetConn returns the wrapped connection (as crypto/tls.Conn does).
func (c *watchedConn) NetConn() net.Conn { return c.Conn }

// watchedSyscallConn is a watchedConn over a connection that gives its
// file descriptor.
type watchedSyscallConn struct {
	*watchedConn
	sc syscall.Conn
}

func (c *watchedSyscallConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }
