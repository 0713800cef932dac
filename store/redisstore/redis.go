// Package redisstore keeps Gatehouse's data in Redis through go-redis's
// UniversalClient, so a single node, Sentinel and Cluster all work. It is
// the backend for production and for several portal instances that share
// one store.
package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

var _ store.Store = (*Store)(nil)

// Timeouts for talking to Redis. They are short so that an outage turns
// into a quick, clear 503 instead of requests that hang.
const (
	dialTimeout  = 2 * time.Second
	readTimeout  = time.Second
	writeTimeout = time.Second
)

// Store is a store.Store backed by Redis.
type Store struct {
	rdb     redis.UniversalClient
	k       keyspace
	decoded decodeCache
	// servers is what was last learnt about each Redis server on
	// connecting to it: see onConnect.
	servers servers
	// sentinel is set for a store behind Sentinel: it follows which
	// server the client's connections go to, so that the cache's feed
	// vouches only while it is on that same server (see Watch).
	sentinel *connWatch
	// layout is set for a store on a Cluster opened by Open: what its
	// client last learnt of which master serves which slots, so that the
	// cache's feed vouches only while it listens to those masters (see
	// clusterFeed).
	layout *clusterLayouts
	// fences is set for a store on one server opened by Open: its writes
	// are fenced (fence.go) on fenceChannel, so its cache's feed may hold
	// a lease.
	fences       bool
	fenceChannel string
	// noRun is set while the store's newest connection could not read
	// the server's run_id (INFO refused): see Store.fence.
	noRun atomic.Bool
}

// Open connects to the Redis named by url and checks that it answers:
//
//	redis://[user:password@]host:port/db          one server
//	rediss://…                                     the same over TLS
//	unix://[user:password@]/path/redis.sock?db=N   one server on this host, over its Unix socket
//	redis+sentinel://[user:password@]sentinel:port/db?master_name=NAME&addr=sentinel2:port…[&username=U&password=P]
//	                                               (user part: the Sentinels'; username, password: the servers')
//	rediss+sentinel://…                            Sentinel, TLS to the servers
//	redis+cluster://[user:password@]host:port?addr=host2:port&addr=…
//	rediss+cluster://…                             Redis Cluster, over TLS
//
// Over TLS each server's certificate is checked against the host it is
// dialed at, or with the parameter tls_server_name=NAME against NAME.
//
// On one server, a write that changes what the store cache keeps returns
// once every portal instance holding a lease has confirmed it (fence.go):
// a fraction of a millisecond, and up to about 4 s, once, after an
// instance stopped without closing.
//
// With Sentinel, the client asks the sentinels for the current master and
// follows failovers. With Cluster, the addresses are where the client
// first learns the cluster's layout (any of its servers will do; several
// in case one is down), and it follows slots as they move. Every new connection to a server reads its
// persistence settings (Warnings), so a Redis that comes back from a
// restart without persistence is noticed at once.
func Open(ctx context.Context, url string, options ...Option) (*Store, error) {
	opts, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	for _, o := range options {
		if err := o(opts); err != nil {
			return nil, err
		}
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = dialTimeout, readTimeout, writeTimeout
	// Few retries: during an outage a request should fail in about a
	// second, not queue behind many reconnect attempts.
	opts.MaxRetries, opts.DialerRetries = 1, 1
	s := &Store{}
	opts.OnConnect = s.onConnect
	s.rdb = redis.NewUniversalClient(opts)
	if opts.MasterName != "" {
		s.sentinel = newConnWatch()
		s.rdb.AddHook(s.sentinel) // before the first connection
	}
	cc, cluster := s.rdb.(*redis.ClusterClient)
	if cluster {
		s.layout = &clusterLayouts{}
		cc.OnNewNode(s.layout.watch) // before the first connection
	}
	s.k = newKeyspace(cluster)
	if !cluster && s.sentinel == nil {
		s.fences, s.fenceChannel = true, fenceChannel(opts.DB)
		s.rdb.AddHook(fenceHook{s})
	}
	if err := s.Ping(ctx); err != nil {
		s.rdb.Close()
		return nil, err
	}
	for _, step := range []func(context.Context) error{s.upgrade, s.indexEmails, s.indexForPaging, s.markOnUpgrade} {
		if err := step(ctx); err != nil {
			s.rdb.Close()
			return nil, err
		}
	}
	return s, nil
}

// emailsIndexedMark is the meta record that says the email index covers
// the accounts written before it existed.
const emailsIndexedMark = "email-index"

// indexEmails adds the accounts of a store written before emails were
// unique to the email index, once per store. Where two such accounts
// share an email, the first by name is indexed: new accounts cannot take
// that email, and the duplicate stays until an admin changes one of them
// (the portal warns about it at start). An entry this leaves behind for
// an account that changes its email meanwhile is harmless: see
// emailHolder.
func (s *Store) indexEmails(ctx context.Context) error {
	if n, err := s.rdb.Exists(ctx, s.k.meta(emailsIndexedMark)).Result(); err != nil {
		return wrap("check the email index", err)
	} else if n > 0 {
		return nil
	}
	accts, err := s.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("build the email index: %w", err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range accts {
			k := store.EmailKey(a.Email)
			switch {
			case k == "":
			case s.k.cluster:
				p.SetNX(ctx, s.k.emailClaim(k), a.Name, 0)
			default:
				p.HSetNX(ctx, s.k.emails, k, a.Name)
			}
		}
		p.Set(ctx, s.k.meta(emailsIndexedMark), "1", 0)
		return nil
	})
	if err != nil {
		return wrap("build the email index", err)
	}
	return nil
}

// An Option changes how Open connects.
type Option func(*redis.UniversalOptions) error

// WithCAs makes TLS to Redis trust the CAs in pool only, instead of the
// system's: a server, a Cluster node or a master that a Sentinel names
// must have a certificate from one of them.
func WithCAs(pool *x509.CertPool) Option {
	return func(o *redis.UniversalOptions) error {
		if o.TLSConfig == nil {
			return errors.New("CAs for Redis's certificates are given, but the store URL does not use TLS (rediss://…)")
		}
		o.TLSConfig.RootCAs = pool
		return nil
	}
}

// parseURL turns a store URL into client options. It refuses
// skip_verify, which go-redis reads from the URL: a portal that does not
// check its store's certificate trusts whoever answers. Its errors never
// quote the URL, which may hold passwords.
func parseURL(url string) (*redis.UniversalOptions, error) {
	o, err := parseStoreURL(url)
	var invalid *neturl.Error
	if errors.As(err, &invalid) {
		// net/url's errors quote the URL, or the part of it they could
		// not read, which may be a password's.
		return nil, errors.New("the store URL is not a valid URL: in a user name or password, write @ as %40, ? as %3F, # as %23, / as %2F and : (in a user name) as %3A")
	}
	if err == nil && o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify {
		return nil, errors.New("the store URL turns off the check of Redis's certificate (skip_verify): not allowed; for a private CA, give it with --store-ca")
	}
	return o, err
}

func parseStoreURL(url string) (*redis.UniversalOptions, error) {
	// go-redis drops a fragment; a "#" in a password must be written %23.
	if strings.Contains(url, "#") {
		return nil, errors.New("the store URL holds a #, which would cut it short: write a # in a password as %23")
	}
	// go-redis reads a unix:// URL's path only: in unix://run/redis.sock
	// "run" would be a host, dropped without a word, and the portal would
	// dial /redis.sock.
	if rest, ok := strings.CutPrefix(url, "unix://"); ok {
		path := rest[strings.LastIndex(rest, "@")+1:] // after the user part, if any
		if !strings.HasPrefix(path, "/") {
			return nil, errors.New("a unix:// store URL names the socket by its absolute path: unix:///run/redis/redis-server.sock?db=0 (three slashes)")
		}
	}
	url, serverName, err := cutServerName(url)
	if err != nil {
		return nil, err
	}
	o, err := parseServersURL(url)
	if err != nil || serverName == "" {
		return o, err
	}
	if o.TLSConfig == nil {
		return nil, errors.New("the store URL's tls_server_name is for Redis over TLS (rediss://…)")
	}
	o.TLSConfig.ServerName = serverName
	return o, nil
}

// cutServerName takes the tls_server_name parameter out of a store URL
// (go-redis's parsers refuse parameters they do not know). With it, every
// server's certificate is checked against that one name, wherever the
// server is dialed: for servers that share one certificate which names
// neither the addresses a Cluster's nodes announce nor the master's that
// Sentinel gives.
func cutServerName(url string) (string, string, error) {
	base, query, found := strings.Cut(url, "?")
	if !found {
		return url, "", nil
	}
	q, err := neturl.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("parse the store URL's parameters: %w", err)
	}
	names, ok := q["tls_server_name"]
	if !ok {
		return url, "", nil
	}
	if len(names) != 1 || names[0] == "" {
		return "", "", errors.New("the store URL's tls_server_name takes one host name")
	}
	q.Del("tls_server_name")
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	return base, names[0], nil
}

func parseServersURL(url string) (*redis.UniversalOptions, error) {
	if rest, ok := strings.CutPrefix(url, "redis+sentinel://"); ok {
		return parseSentinelURL("redis://" + rest)
	}
	if rest, ok := strings.CutPrefix(url, "rediss+sentinel://"); ok {
		return parseSentinelURL("rediss://" + rest)
	}
	if rest, ok := strings.CutPrefix(url, "redis+cluster://"); ok {
		return parseClusterURL("redis://" + rest)
	}
	if rest, ok := strings.CutPrefix(url, "rediss+cluster://"); ok {
		return parseClusterURL("rediss://" + rest)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis URL: %w", err)
	}
	return &redis.UniversalOptions{Addrs: []string{opt.Addr}, Username: opt.Username, Password: opt.Password,
		DB: opt.DB, TLSConfig: opt.TLSConfig}, nil
}

func parseClusterURL(url string) (*redis.UniversalOptions, error) {
	u, err := neturl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis+cluster URL: %w", err)
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("parse redis+cluster URL: Redis Cluster has only database 0, not %q", p)
	}
	u.Path = ""
	co, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("parse redis+cluster URL: %w", err)
	}
	return &redis.UniversalOptions{Addrs: co.Addrs, IsClusterMode: true, Username: co.Username, Password: co.Password,
		TLSConfig: eachHostItsName(co.TLSConfig)}, nil
}

// eachHostItsName makes a TLS configuration check each server's
// certificate against the host it is dialed at. go-redis's URL parsers
// set ServerName to the URL's first host, which suits one server but not
// a Cluster's other nodes (dialed at the address or host name each
// announces) or the master a Sentinel names: with a certificate of their
// own, each would be refused. The host dialed comes from the cluster's
// or Sentinel's own answers, over connections whose certificates were
// checked.
func eachHostItsName(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone()
	c.ServerName = ""
	return c
}

func parseSentinelURL(url string) (*redis.UniversalOptions, error) {
	fo, err := redis.ParseFailoverURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis+sentinel URL: %w", err)
	}
	if fo.MasterName == "" {
		return nil, errors.New("parse redis+sentinel URL: name the master with ?master_name=NAME")
	}
	return &redis.UniversalOptions{Addrs: fo.SentinelAddrs, MasterName: fo.MasterName,
		Username: fo.Username, Password: fo.Password, SentinelUsername: fo.SentinelUsername,
		SentinelPassword: fo.SentinelPassword, DB: fo.DB, TLSConfig: eachHostItsName(fo.TLSConfig)}, nil
}

// New returns a Store that uses an existing client.
func New(rdb redis.UniversalClient) *Store {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, k: newKeyspace(cluster)}
}

// Close closes the Redis client.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping reports whether Redis answers. On a Cluster every server must
// answer and see the cluster as ok (a master down without a replica to
// take over leaves slots nobody serves); the error names the first
// server that does not (store.ServerError).
func (s *Store) Ping(ctx context.Context) error {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			return wrap("ping", err)
		}
		return nil
	}
	err := cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && infoField(info, "cluster_state") != "ok" {
			err = fmt.Errorf("cluster_state:%s: some slots are served by no server", infoField(info, "cluster_state"))
		}
		if err != nil {
			return &store.ServerError{Server: c.Options().Addr, Err: wrap("ping", err)}
		}
		return nil
	})
	if err != nil {
		var se *store.ServerError
		if errors.As(err, &se) {
			return err
		}
		return wrap("ping", err)
	}
	return nil
}

// wrap turns a go-redis error into a store error: redis.Nil becomes
// store.ErrNotFound, anything else store.ErrUnavailable.
func wrap(op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

func getJSON[T any](ctx context.Context, rdb redis.Cmdable, op, key string) (T, error) {
	var v T
	b, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		return v, wrap(op, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%s: decode %s: %w", op, key, err)
	}
	return v, nil
}

// getAll loads the JSON records listed in the set at indexKey.
func getAll[T any](ctx context.Context, rdb redis.Cmdable, op, indexKey string, key func(string) string) ([]T, error) {
	names, err := rdb.SMembers(ctx, indexKey).Result()
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = key(n)
	}
	vals, err := rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, wrap(op, err)
	}
	out := make([]T, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // removed between SMEMBERS and MGET
		}
		var t T
		if err := json.Unmarshal([]byte(str), &t); err != nil {
			return nil, fmt.Errorf("%s: decode %s: %w", op, keys[i], err)
		}
		out = append(out, t)
	}
	return out, nil
}

// putIndexed writes v as JSON under key and adds id to the set at index
// that getAll reads, together.
func (s *Store) putIndexed(ctx context.Context, op, key, index, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, b, 0)
		p.SAdd(ctx, index, id)
		return nil
	})
	if err != nil {
		return wrap(op, err)
	}
	return nil
}

// deleteIndexed removes key, and id from the set at index, together.
func (s *Store) deleteIndexed(ctx context.Context, op, key, index, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.SRem(ctx, index, id)
		return nil
	})
	if err != nil {
		return wrap(op, err)
	}
	return nil
}

// Account returns the named account.
func (s *Store) Account(ctx context.Context, name string) (store.Account, error) {
	return getJSON[store.Account](ctx, s.rdb, "load account", s.k.account(name))
}

// Accounts returns every account sorted by name: from the set of names
// on one server (which instances of earlier versions also write), from
// the sorted set of names on a Cluster, whose records are on every
// server.
func (s *Store) Accounts(ctx context.Context) ([]store.Account, error) {
	if !s.k.cluster {
		return getAll[store.Account](ctx, s.rdb, "list accounts", s.k.accounts, s.k.account)
	}
	names, err := s.rdb.ZRange(ctx, s.k.accountNames, 0, -1).Result()
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.k.account(n)
	}
	vals, found, err := getRecords[store.Account](ctx, s.rdb, "list accounts", keys)
	return present(vals, found), err
}

// CreateAccount adds a new account; it fails with store.ErrExists when the
// name is taken and with store.ErrEmailTaken when another account has its
// email. The record, its index entries and its email entry are written
// together, under WATCH of the record and (for an account with an email)
// the email index, so of two creates racing for one email only one can
// succeed; an account without an email does not wait for others.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	if a.ID == "" {
		a.ID = store.NewAccountID()
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode account: %w", err)
	}
	if s.k.cluster {
		return s.createInCluster(ctx, a, b)
	}
	key, email := s.k.account(a.Name), store.EmailKey(a.Email)
	watched := []string{key}
	if email != "" {
		watched = append(watched, s.k.emails)
	}
	return retryTx("create account", a.Name, func() error {
		return s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
			n, err := tx.Exists(ctx, key).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return final(fmt.Errorf("create account %q: %w", a.Name, store.ErrExists))
			}
			if email != "" {
				holder, err := s.emailHolder(ctx, tx, email)
				if err != nil {
					return err
				}
				if holder != "" {
					return final(fmt.Errorf("create account %q: email %q is the email of account %q: %w", a.Name, a.Email, holder, store.ErrEmailTaken))
				}
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, b, 0)
				p.SAdd(ctx, s.k.accounts, a.Name)
				p.ZAdd(ctx, s.k.accountNames, redis.Z{Member: a.Name})
				if email != "" {
					p.HSet(ctx, s.k.emails, email, a.Name)
				}
				return nil
			})
			return err
		}, watched...)
	})
}

// emailHolder returns the account the email index names for email (an
// EmailKey), or "" when none. An entry whose account is gone or no longer
// has that email (left by an index build racing a change, or by an older
// gatehouse) counts as free. It must run inside a transaction that
// watches the email index; it watches the holder's record too.
func (s *Store) emailHolder(ctx context.Context, tx *redis.Tx, email string) (string, error) {
	holder, err := tx.HGet(ctx, s.k.emails, email).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if err := tx.Watch(ctx, s.k.account(holder)).Err(); err != nil {
		return "", err
	}
	raw, err := tx.Get(ctx, s.k.account(holder)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var a store.Account
	if err := json.Unmarshal(raw, &a); err != nil {
		return "", fmt.Errorf("decode account %q: %w", holder, err)
	}
	if store.EmailKey(a.Email) != email {
		return "", nil
	}
	return holder, nil
}

// maxTxRetries bounds optimistic-locking retries under contention.
const maxTxRetries = 20

// retryTx runs attempt, one try at an optimistic transaction (WATCH,
// read, MULTI/EXEC), again while it fails with redis.TxFailedErr because
// a watched key changed, at most maxTxRetries times; then it fails with
// store.ErrUnavailable as `what "subject": ...: too much contention`.
// An attempt marks an outcome it has settled, such as a missing record
// or a refused change, with final: that error is returned as it is. Any
// other error is Redis's own and is wrapped as a failure to what.
func retryTx(what, subject string, attempt func() error) error {
	for range maxTxRetries {
		err := attempt()
		var f finalError
		switch {
		case errors.As(err, &f):
			return f.err
		case errors.Is(err, redis.TxFailedErr):
			continue
		case err != nil:
			return wrap(what, err)
		}
		return nil
	}
	return fmt.Errorf("%s %q: %w: too much contention", what, subject, store.ErrUnavailable)
}

// errMoving is watch's error when the client could not run the
// transaction on the server its keys are being moved to.
var errMoving = errors.New("the records are being moved between the cluster's servers; try again")

// watch runs fn under WATCH of keys (Watch of the store's client), and
// fails when fn never ran to its end although the client reports no
// error. On a Cluster, while the keys' slot is being moved, go-redis's
// ClusterClient.Watch follows ASK to the importing node without ASKING,
// is sent back by MOVED, and after its last redirect returns nil without
// having run fn: an update would be reported done and never made.
//
// fn's commands go with the context it is given: a write to a cached
// record in them is fenced (fence.go) once the transaction has let go of
// its connection, not on it, so that a fence waiting for an instance
// never holds two of the pool's connections.
func (s *Store) watch(ctx context.Context, fn func(context.Context, *redis.Tx) error, keys ...string) error {
	ran := false
	var deferred fenceLater
	tctx := context.WithValue(ctx, fenceLaterKey{}, &deferred)
	err := s.rdb.Watch(tctx, func(tx *redis.Tx) error {
		err := fn(tctx, tx)
		ran = err == nil
		return err
	}, keys...)
	if deferred.due {
		if ferr := s.fence(ctx); ferr != nil && err == nil {
			return finalError{ferr}
		}
	}
	if err == nil && !ran {
		return fmt.Errorf("%w (%s)", errMoving, strings.Join(keys, ", "))
	}
	return err
}

// final marks err as the outcome of an attempt of retryTx, to be
// returned as it is: neither retried nor wrapped.
func final(err error) error { return finalError{err} }

// finalError is an error marked by final.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }

// UpdateAccount applies fn to the account under WATCH, so concurrent
// updates never overwrite each other. An error from fn is returned as is.
// A changed email moves the account's email entry in the same
// transaction, and fails with store.ErrEmailTaken when another account
// has the new one; an unchanged email is never refused.
func (s *Store) UpdateAccount(ctx context.Context, name string, fn func(*store.Account) error) error {
	if s.k.cluster {
		return s.updateInCluster(ctx, name, fn)
	}
	key := s.k.account(name)
	return retryTx("update account", name, func() error {
		return s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
			a, err := getJSON[store.Account](ctx, tx, "load account", key)
			if err != nil {
				return final(err)
			}
			before := store.EmailKey(a.Email)
			id := a.ID
			if err := fn(&a); err != nil {
				return final(err)
			}
			a.Name, a.ID = name, id
			after := store.EmailKey(a.Email)
			moved, dropBefore := after != before, false
			if moved {
				if err := tx.Watch(ctx, s.k.emails).Err(); err != nil {
					return err
				}
				if after != "" {
					holder, err := s.emailHolder(ctx, tx, after)
					if err != nil {
						return err
					}
					if holder != "" && holder != name {
						return final(fmt.Errorf("update account %q: email %q is the email of account %q: %w", name, a.Email, holder, store.ErrEmailTaken))
					}
				}
				if before != "" {
					h, err := tx.HGet(ctx, s.k.emails, before).Result()
					if err != nil && !errors.Is(err, redis.Nil) {
						return err
					}
					dropBefore = h == name
				}
			}
			b, err := json.Marshal(a)
			if err != nil {
				return final(fmt.Errorf("encode account: %w", err))
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, b, 0)
				if dropBefore {
					p.HDel(ctx, s.k.emails, before)
				}
				if moved && after != "" {
					p.HSet(ctx, s.k.emails, after, name)
				}
				return nil
			})
			return err
		}, key)
	})
}

// Role returns the named role.
func (s *Store) Role(ctx context.Context, name string) (store.Role, error) {
	return getJSON[store.Role](ctx, s.rdb, "load role", s.k.role(name))
}

// Roles returns every role sorted by name.
func (s *Store) Roles(ctx context.Context) ([]store.Role, error) {
	return getAll[store.Role](ctx, s.rdb, "list roles", s.k.roles, s.k.role)
}

// PutRole creates or replaces a role.
func (s *Store) PutRole(ctx context.Context, r store.Role) error {
	return s.putIndexed(ctx, "put role", s.k.role(r.Name), s.k.roles, r.Name, r)
}

// App returns the named app.
func (s *Store) App(ctx context.Context, name string) (store.App, error) {
	return getJSON[store.App](ctx, s.rdb, "load app", s.k.app(name))
}

// Apps returns every app sorted by name.
func (s *Store) Apps(ctx context.Context) ([]store.App, error) {
	return getAll[store.App](ctx, s.rdb, "list apps", s.k.apps, s.k.app)
}

// PutApp creates or replaces an app.
func (s *Store) PutApp(ctx context.Context, a store.App) error {
	return s.putIndexed(ctx, "put app", s.k.app(a.Name), s.k.apps, a.Name, a)
}

// DeleteApp removes an app.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	return s.deleteIndexed(ctx, "delete app", s.k.app(name), s.k.apps, name)
}

// PutCertificate records an issued certificate, in the set of serials
// and in the sorted sets that list certificates by issue time (all, and
// the user's). A record it replaces leaves those sets.
func (s *Store) PutCertificate(ctx context.Context, c store.Certificate) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode certificate: %w", err)
	}
	old, err := getJSON[store.Certificate](ctx, s.rdb, "put certificate", s.k.cert(c.Serial))
	replaced := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.k.cert(c.Serial), b, 0)
		p.SAdd(ctx, s.k.certs, c.Serial)
		if replaced {
			p.ZRem(ctx, s.k.certsByIssue, issueMember(old))
			p.ZRem(ctx, s.k.certsOf(old.User), issueMember(old))
		}
		p.ZAdd(ctx, s.k.certsByIssue, redis.Z{Member: issueMember(c)})
		p.ZAdd(ctx, s.k.certsOf(c.User), redis.Z{Member: issueMember(c)})
		return nil
	})
	if err != nil {
		return wrap("put certificate", err)
	}
	return nil
}

// Certificates returns the certificates issued to user (all when user is
// empty), oldest first. A user's are read from the user's certsOf set.
func (s *Store) Certificates(ctx context.Context, user string) ([]store.Certificate, error) {
	var all []store.Certificate
	var err error
	if user == "" {
		all, err = getAll[store.Certificate](ctx, s.rdb, "list certificates", s.k.certs, s.k.cert)
	} else {
		all, err = s.userCertificates(ctx, user)
	}
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if user == "" || c.User == user {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b store.Certificate) int { return a.IssuedAt.Compare(b.IssuedAt) })
	return out, nil
}

// userCertificates reads the certificates in user's certsOf set.
func (s *Store) userCertificates(ctx context.Context, user string) ([]store.Certificate, error) {
	members, err := s.rdb.ZRange(ctx, s.k.certsOf(user), 0, -1).Result()
	if err != nil {
		return nil, wrap("list certificates", err)
	}
	keys := make([]string, 0, len(members))
	for _, m := range members {
		if _, serial, err := parseTimeHex(m); err == nil {
			keys = append(keys, s.k.cert(serial))
		}
	}
	vals, found, err := getRecords[store.Certificate](ctx, s.rdb, "list certificates", keys)
	return present(vals, found), err
}

// Session returns a live session.
func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	return getJSON[store.Session](ctx, s.rdb, "load session", s.k.session(id))
}

// PutSession writes a session that Redis expires after ttl, and indexes
// it under its user so that all of a user's sessions can be found.
//
// On a Cluster the session lives in its account's shard, beside the
// account and its indexes, so its ID must name that shard
// (store.SessionID); another ID is refused.
func (s *Store) PutSession(ctx context.Context, sess store.Session, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put session: ttl must be positive, got %v", ttl)
	}
	if shard, ok := store.SessionShard(sess.ID); s.k.cluster && (!ok || shard != store.Shard(sess.User)) {
		return fmt.Errorf("put session: on a Redis Cluster a session ID must be made by store.SessionID for its user, so that it lives in the account's shard")
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.k.session(sess.ID), b, ttl)
		if sess.User != "" {
			// The index lives as long as its longest-lived session (NX
			// sets a first expiry, GT only ever extends it), so it does
			// not outgrow the sessions Redis expires by itself.
			// sessionsOf holds the same sessions in order, for paging.
			idx, ordered := s.k.userSessions(sess.User), s.k.sessionsOf(sess.User)
			p.SAdd(ctx, idx, sess.ID)
			p.ZAdd(ctx, ordered, redis.Z{Member: sessionMember(sess)})
			for _, k := range []string{idx, ordered} {
				p.ExpireNX(ctx, k, ttl)
				p.ExpireGT(ctx, k, ttl)
			}
		}
		return nil
	})
	if err != nil {
		return wrap("put session", err)
	}
	return nil
}

// DeleteSession removes a session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	sess, err := s.Session(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.session(id))
		p.SRem(ctx, s.k.userSessions(sess.User), id)
		p.ZRem(ctx, s.k.sessionsOf(sess.User), sessionMember(sess))
		return nil
	})
	if err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// DeleteRole removes a role.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	return s.deleteIndexed(ctx, "delete role", s.k.role(name), s.k.roles, name)
}

// RevokeCertificate marks an issued certificate revoked. Its issuer and
// serial go into a set that IsRevoked reads on every request presenting
// a certificate, so revocation takes effect at once on every instance.
func (s *Store) RevokeCertificate(ctx context.Context, serial string, at time.Time, reason string) (store.Certificate, error) {
	op := "revoke certificate " + serial
	c, err := getJSON[store.Certificate](ctx, s.rdb, op, s.k.cert(serial))
	if err != nil {
		return c, err
	}
	if c.RevokedAt.IsZero() {
		c.RevokedAt, c.RevokeReason = at, reason
	}
	b, err := json.Marshal(c)
	if err != nil {
		return store.Certificate{}, fmt.Errorf("%s: encode: %w", op, err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.k.cert(c.Serial), b, 0)
		p.SAdd(ctx, s.k.revoked, revokedMember(c.Issuer, c.Serial))
		// Instances of earlier versions, still running during an
		// upgrade, read revocations by fingerprint. None ever ran on
		// a Cluster.
		if !s.k.cluster {
			p.SAdd(ctx, s.k.legacyRevoked, c.Fingerprint)
		}
		return nil
	})
	if err != nil {
		return store.Certificate{}, wrap(op, err)
	}
	return c, nil
}

// revokedMember is how a revocation is written in the revoked set.
func revokedMember(issuer, serial string) string {
	if issuer == "" {
		issuer = store.AnyIssuer
	}
	return issuer + "/" + serial
}

// IsRevoked reports whether the certificate with that issuer and serial
// was revoked (or a certificate with that serial, when its record had no
// issuer), in one round trip.
func (s *Store) IsRevoked(ctx context.Context, issuer, serial string) (bool, error) {
	in, err := s.rdb.SMIsMember(ctx, s.k.revoked, revokedMember(issuer, serial), revokedMember(store.AnyIssuer, serial)).Result()
	if err != nil {
		return false, wrap("check revocation", err)
	}
	return slices.Contains(in, true), nil
}

// upgrade brings data written by earlier versions up to date; it is
// idempotent and runs when the store is opened. Revocations used to be
// kept by certificate fingerprint, which re-encoding a certificate
// changes: each revoked record is written again by issuer and serial.
// It runs at every open while that older set exists, so a certificate
// revoked by an instance of an earlier version during an upgrade is
// picked up by the next start.
func (s *Store) upgrade(ctx context.Context) error {
	legacy, err := s.rdb.Exists(ctx, s.k.legacyRevoked).Result()
	if err != nil {
		return wrap("check stored revocations", err)
	}
	if legacy == 0 {
		return nil
	}
	certs, err := s.Certificates(ctx, "")
	if err != nil {
		return err
	}
	var members []any
	for _, c := range certs {
		if !c.RevokedAt.IsZero() {
			members = append(members, revokedMember(c.Issuer, c.Serial))
		}
	}
	if len(members) == 0 {
		return nil
	}
	if err := s.rdb.SAdd(ctx, s.k.revoked, members...).Err(); err != nil {
		return wrap("rewrite stored revocations by issuer and serial", err)
	}
	return nil
}

// AppendAudit adds an event to the audit stream. Redis assigns the ID,
// which orders events across portal instances.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	e.ID = ""
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	if err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.k.audit, Values: []any{"e", b}}).Err(); err != nil {
		return wrap("append audit event", err)
	}
	return nil
}

// Audit returns events newest first, a page at a time. It reads the
// stream backwards in batches, filtering, until the page is full or
// maxAuditScan events were looked at: a bound on one page's work, however
// long the trail and however rare the events the filters match. Next is
// then the last event looked at.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) (store.Page[store.AuditEvent], error) {
	var page store.Page[store.AuditEvent]
	limit := q.Limit
	if limit <= 0 || limit > store.MaxPage {
		limit = store.MaxPage
	}
	end := "+"
	if q.Before != "" {
		end = "(" + q.Before
	}
	page.Items = make([]store.AuditEvent, 0, min(limit, 100))
	scanned := 0
	for {
		msgs, err := s.rdb.XRevRangeN(ctx, s.k.audit, end, "-", auditBatch).Result()
		if err != nil {
			return page, wrap("read audit trail", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["e"].(string)
			var e store.AuditEvent
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return page, fmt.Errorf("decode audit event %s: %w", m.ID, err)
			}
			e.ID = m.ID
			scanned++
			if q.Matches(e) {
				page.Items = append(page.Items, e)
			}
			if len(page.Items) == limit || scanned == maxAuditScan {
				page.Next = m.ID
				return page, nil
			}
		}
		if len(msgs) < auditBatch {
			return page, nil // the oldest event was looked at
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
}

// Bounds on reading the audit stream for one page.
const (
	auditBatch   = 500
	maxAuditScan = 20_000
)

// UseTOTPStep marks a step used with SET NX, atomic across instances.
func (s *Store) UseTOTPStep(ctx context.Context, user string, step int64, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.k.totpStep(user, step), 1, ttl).Result()
	if err != nil {
		return false, wrap("mark TOTP step", err)
	}
	return ok, nil
}

// AddFailure increments the counter and renews its expiry.
func (s *Store) AddFailure(ctx context.Context, key string, ttl time.Duration) (int, error) {
	var incr *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, s.k.failure(key))
		p.Expire(ctx, s.k.failure(key), ttl)
		return nil
	})
	if err != nil {
		return 0, wrap("count failure", err)
	}
	return int(incr.Val()), nil
}

// Failures returns the counter, 0 when absent.
func (s *Store) Failures(ctx context.Context, key string) (int, error) {
	n, err := s.rdb.Get(ctx, s.k.failure(key)).Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("read failures", err)
	}
	return n, nil
}

// FailuresOf reads the counters in one pipeline (the keys may live on
// different servers of a Cluster).
func (s *Store) FailuresOf(ctx context.Context, keys []string) ([]int, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.k.failure(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrap("read failures", err)
	}
	out := make([]int, len(keys))
	for i, c := range cmds {
		n, err := c.Int()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, wrap("read failures", err)
		default:
			out[i] = n
		}
	}
	return out, nil
}

// ResetFailures deletes the counter.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, s.k.failure(key)).Err(); err != nil {
		return wrap("reset failures", err)
	}
	return nil
}

// SetMetaOnce stores a value unless one exists and returns the one kept.
func (s *Store) SetMetaOnce(ctx context.Context, name, value string) (string, error) {
	if err := s.rdb.SetNX(ctx, s.k.meta(name), value, 0).Err(); err != nil {
		return "", wrap("set meta", err)
	}
	v, err := s.rdb.Get(ctx, s.k.meta(name)).Result()
	if err != nil {
		return "", wrap("read meta", err)
	}
	return v, nil
}

// RaiseCounter keeps the greater of the stored and the given value, as
// decimal text, under WATCH: numbers of any size compare in Go, and it
// works where scripts are refused and on a Cluster (one key).
func (s *Store) RaiseCounter(ctx context.Context, name string, value *big.Int) (*big.Int, error) {
	if value == nil {
		return nil, fmt.Errorf("raise counter %q: no value", name)
	}
	key := s.k.counter(name)
	var kept *big.Int
	err := retryTx("raise counter", name, func() error {
		return s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
			text, err := tx.Get(ctx, key).Result()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				current, ok := new(big.Int).SetString(text, 10)
				if !ok {
					return final(fmt.Errorf("counter %q holds %q, not a number", name, text))
				}
				if current.Cmp(value) >= 0 {
					kept = current
					return nil
				}
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, value.String(), 0)
				return nil
			})
			kept = new(big.Int).Set(value)
			return err
		}, key)
	})
	if err != nil {
		return nil, err
	}
	return kept, nil
}

// deleteBatch is how many sessions one step of DeleteUserSessions
// removes: small enough that Redis, which runs one command at a time,
// answers every other instance between two steps within about a
// millisecond, however many sessions the user has.
const deleteBatch = 500

// DeleteUserSessions removes every session of user, a batch at a time.
// Each step reads up to deleteBatch sessions from the user's sorted set
// (its head: O(log n)) and, in one transaction, unlinks their records
// (UNLINK frees the memory in the background) and takes them off both of
// the user's indexes, so a session leaves an index only together with
// its record. Then the same for IDs only in the set (written by an
// earlier version), with SSCAN, which resumes where the last step
// stopped. It repeats until both are empty: sessions started meanwhile
// are ended too.
func (s *Store) DeleteUserSessions(ctx context.Context, user string) (int, error) {
	idx, ordered := s.k.userSessions(user), s.k.sessionsOf(user)
	n := 0
	unlink := func(ids, members []string) error {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = s.k.session(id)
		}
		var unlinked *redis.IntCmd
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if len(ids) > 0 {
				unlinked = p.Unlink(ctx, keys...)
				p.SRem(ctx, idx, toAny(ids)...)
			}
			if len(members) > 0 {
				p.ZRem(ctx, ordered, toAny(members)...)
			}
			return nil
		})
		if err != nil {
			return wrap("delete user sessions", err)
		}
		if unlinked != nil {
			n += int(unlinked.Val())
		}
		return nil
	}
	for {
		members, err := s.rdb.ZRange(ctx, ordered, 0, deleteBatch-1).Result()
		if err != nil {
			return n, wrap("list user sessions", err)
		}
		if len(members) > 0 {
			ids := make([]string, 0, len(members))
			for _, m := range members {
				if _, id, err := parseTimeHex(m); err == nil {
					ids = append(ids, id)
				}
			}
			if err := unlink(ids, members); err != nil {
				return n, err
			}
			continue
		}
		var cursor uint64
		for {
			ids, next, err := s.rdb.SScan(ctx, idx, cursor, "", deleteBatch).Result()
			if err != nil {
				return n, wrap("list user sessions", err)
			}
			// COUNT is a hint: a step may bring a few more.
			for batch := range slices.Chunk(ids, deleteBatch) {
				if err := unlink(batch, nil); err != nil {
					return n, err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		// A pass is over; sessions added during it may remain.
		left, err := s.rdb.SCard(ctx, idx).Result()
		if err != nil {
			return n, wrap("count user sessions", err)
		}
		if left == 0 {
			return n, nil
		}
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// DeleteAccount removes the account record, its index entry and its
// email entry, together.
func (s *Store) DeleteAccount(ctx context.Context, name string) error {
	if s.k.cluster {
		return s.deleteInCluster(ctx, name)
	}
	key := s.k.account(name)
	return retryTx("delete account", name, func() error {
		return s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
			raw, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return final(fmt.Errorf("delete account %q: %w", name, store.ErrNotFound))
			}
			if err != nil {
				return err
			}
			// A record that does not decode is deleted all the same.
			var a store.Account
			_ = json.Unmarshal(raw, &a)
			email, drop := store.EmailKey(a.Email), false
			if email != "" {
				h, err := tx.HGet(ctx, s.k.emails, email).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				drop = h == name
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, key)
				p.SRem(ctx, s.k.accounts, name)
				p.ZRem(ctx, s.k.accountNames, name)
				if drop {
					p.HDel(ctx, s.k.emails, email)
				}
				return nil
			})
			return err
		}, key, s.k.emails)
	})
}

// Sessions returns the user's live sessions; IDs in the index whose
// session expired are dropped from it on the way.
func (s *Store) Sessions(ctx context.Context, user string) ([]store.Session, error) {
	ids, err := s.rdb.SMembers(ctx, s.k.userSessions(user)).Result()
	if err != nil {
		return nil, wrap("list user sessions", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.session(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, wrap("list user sessions", err)
	}
	var out []store.Session
	var dead []any
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			dead = append(dead, ids[i])
			continue
		}
		var sess store.Session
		if err := json.Unmarshal([]byte(str), &sess); err != nil {
			return nil, fmt.Errorf("decode session: %w", err)
		}
		out = append(out, sess)
	}
	if len(dead) > 0 {
		s.rdb.SRem(ctx, s.k.userSessions(user), dead...) // best effort
	}
	slices.SortFunc(out, func(a, b store.Session) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// viewScript reads a session, its account and every role and app
// definition, on one server: KEYS[1] is the session key, KEYS[2] and
// KEYS[3] the sets of role and app names, ARGV[1], ARGV[2] and ARGV[3]
// the account, role and app keys without the name. It returns false for
// a missing session, else {session, account or false, {role…}, {app…}}.
var viewScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if not s then return false end
local ok, sess = pcall(cjson.decode, s)
if not ok or type(sess) ~= 'table' or type(sess['user']) ~= 'string' then
  return redis.error_reply('session record does not decode')
end
local a = redis.call('GET', ARGV[1] .. sess['user'])
local function all(index, prefix)
  local names = redis.call('SMEMBERS', index)
  local out = {}
  for i, n in ipairs(names) do
    local v = redis.call('GET', prefix .. n)
    if v then out[#out + 1] = v end
  end
  return out
end
return {s, a or false, all(KEYS[2], ARGV[2]), all(KEYS[3], ARGV[3])}
`)

// sessionScript and configScript are viewScript in two, for a Cluster,
// where a script reads one slot: sessionScript reads a session and its
// account (KEYS[1] is the session key, ARGV[1] the account key without
// the name, in the session's shard: the account lives there too) and
// returns false for a missing session, else {session, account or false}.
// key, ARGV[1] the account key without the name (in the session's shard:
// on a Cluster the account lives there too). It returns false for a
// missing session, else {session, account or false}.
var sessionScript = redis.NewScript(`
local s = redis.call('GET', KEYS[1])
if not s then return false end
local ok, sess = pcall(cjson.decode, s)
if not ok or type(sess) ~= 'table' or type(sess['user']) ~= 'string' then
  return redis.error_reply('session record does not decode')
end
local a = redis.call('GET', ARGV[1] .. sess['user'])
return {s, a or false}
`)

// configScript reads every role and app definition: KEYS[1] and KEYS[2]
// are the sets of role and app names, ARGV[1] and ARGV[2] the role and
// app keys without the name. It returns {{role…}, {app…}}.
var configScript = redis.NewScript(`
local function all(index, prefix)
  local names = redis.call('SMEMBERS', index)
  local out = {}
  for i, n in ipairs(names) do
    local v = redis.call('GET', prefix .. n)
    if v then out[#out + 1] = v end
  end
  return out
end
return {all(KEYS[1], ARGV[1]), all(KEYS[2], ARGV[2])}
`)

// View reads a session with its account and the role and app
// definitions: the hot path of every request on a session, /auth/verify
// above all. It is one round trip: on one server one script; on a
// Cluster one pipeline of two scripts, the session script on the server
// of the session's shard (which holds the account too) and the other on
// the server of {config}, both at once.
func (s *Store) View(ctx context.Context, id string) (store.SessionView, error) {
	res, err := s.runView(ctx, id, false)
	if err != nil && isNoScript(err) {
		// A server that does not know the scripts yet (new, restarted,
		// or a Cluster's other node): send them in full, once.
		res, err = s.runView(ctx, id, true)
	}
	if err != nil && isScriptingRefused(err) {
		// A Redis whose ACL or provider forbids scripts: the same answer
		// in several round trips.
		return store.ViewByParts(ctx, s, id)
	}
	if errors.Is(err, redis.Nil) {
		return store.SessionView{}, fmt.Errorf("load session view: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.SessionView{}, wrap("load session view", err)
	}
	parts, ok := res.([]any)
	if !ok || len(parts) != 4 {
		return store.SessionView{}, fmt.Errorf("load session view: unexpected answer %T", res)
	}
	var v store.SessionView
	if err := decodeString(parts[0], &v.Session); err != nil {
		return v, fmt.Errorf("load session view: session: %w", err)
	}
	if parts[1] != nil {
		if err := s.decoded.get(parts[1], &v.Account); err != nil {
			return v, fmt.Errorf("load session view: account: %w", err)
		}
	}
	if v.Roles, err = decodeListCached[store.Role](&s.decoded, parts[2]); err != nil {
		return v, fmt.Errorf("load session view: roles: %w", err)
	}
	if v.Apps, err = decodeListCached[store.App](&s.decoded, parts[3]); err != nil {
		return v, fmt.Errorf("load session view: apps: %w", err)
	}
	slices.SortFunc(v.Roles, func(a, b store.Role) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Apps, func(a, b store.App) int { return strings.Compare(a.Name, b.Name) })
	return v, nil
}

// runView runs View's script (on one server) or its two scripts in one
// pipeline (on a Cluster), by hash or, with full, in full, and returns
// the answer as viewScript gives it; redis.Nil when there is no session.
func (s *Store) runView(ctx context.Context, id string, full bool) (any, error) {
	run := func(c redis.Scripter, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
		if full {
			return sc.Eval(ctx, c, keys, args...)
		}
		return sc.EvalSha(ctx, c, keys, args...)
	}
	if !s.k.cluster {
		return run(s.rdb, viewScript, []string{s.k.session(id), s.k.roles, s.k.apps},
			s.k.accountPrefix(id), s.k.rolePrefix, s.k.appPrefix).Result()
	}
	var sess, config *redis.Cmd
	s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		sess = run(p, sessionScript, []string{s.k.session(id)}, s.k.accountPrefix(id))
		config = run(p, configScript, []string{s.k.roles, s.k.apps}, s.k.rolePrefix, s.k.appPrefix)
		return nil
	})
	for _, c := range []*redis.Cmd{sess, config} {
		if err := c.Err(); err != nil {
			return nil, err
		}
	}
	parts, ok := sess.Val().([]any)
	cfg, ok2 := config.Val().([]any)
	if !ok || len(parts) != 2 || !ok2 || len(cfg) != 2 {
		return nil, fmt.Errorf("unexpected answer %T %T", sess.Val(), config.Val())
	}
	return []any{parts[0], parts[1], cfg[0], cfg[1]}, nil
}

// isNoScript reports whether Redis did not know a script by its hash.
func isNoScript(err error) bool { return strings.HasPrefix(err.Error(), "NOSCRIPT") }

func decodeString(x any, v any) error {
	str, ok := x.(string)
	if !ok {
		return fmt.Errorf("unexpected %T", x)
	}
	return json.Unmarshal([]byte(str), v)
}

func decodeListCached[T any](c *decodeCache, x any) ([]T, error) {
	items, ok := x.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected %T", x)
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		var t T
		if err := c.get(it, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// decodeCache remembers decoded records by their JSON text. Accounts,
// roles and apps change rarely and are read on every request; keyed by
// the text itself, a cached value can never be stale.
type decodeCache struct {
	mu sync.Mutex
	m  map[string]any
}

// maxDecoded bounds the cache; it is emptied when full.
const maxDecoded = 10_000

// get decodes x (a JSON string) into v, which must point to a record
// type, from the cache when the same text was decoded before.
func (c *decodeCache) get(x any, v any) error {
	text, ok := x.(string)
	if !ok {
		return fmt.Errorf("unexpected %T", x)
	}
	c.mu.Lock()
	cached, hit := c.m[text]
	c.mu.Unlock()
	if hit {
		return assign(v, cached)
	}
	if err := json.Unmarshal([]byte(text), v); err != nil {
		return err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxDecoded {
		c.m = make(map[string]any)
	}
	c.m[text] = deref(v)
	c.mu.Unlock()
	return nil
}

// deref copies the record v points to, slices included, so that what
// the caller does with its value never reaches the cache.
func deref(v any) any {
	switch p := v.(type) {
	case *store.Account:
		return cloneAccount(*p)
	case *store.Role:
		return *p
	case *store.App:
		a := *p
		a.Roles = slices.Clone(a.Roles)
		return a
	}
	return nil
}

// assign gives v a copy of the cached record.
func assign(v any, cached any) error {
	switch p := v.(type) {
	case *store.Account:
		*p = cloneAccount(cached.(store.Account))
	case *store.Role:
		*p = cached.(store.Role)
	case *store.App:
		a := cached.(store.App)
		a.Roles = slices.Clone(a.Roles)
		*p = a
	default:
		return fmt.Errorf("decode cache: unexpected %T", v)
	}
	return nil
}

func cloneAccount(a store.Account) store.Account {
	a.Roles, a.PinnedFingerprints, a.PinnedKeys, a.RecoveryCodes = slices.Clone(a.Roles), slices.Clone(a.PinnedFingerprints), slices.Clone(a.PinnedKeys), slices.Clone(a.RecoveryCodes)
	a.Enrollments, a.Renewed = slices.Clone(a.Enrollments), slices.Clone(a.Renewed)
	return a
}

// Claim takes key for ttl with SET NX.
func (s *Store) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("claim: ttl must be positive, got %v", ttl)
	}
	ok, err := s.rdb.SetNX(ctx, s.k.claim(key), 1, ttl).Result()
	if err != nil {
		return false, wrap("claim", err)
	}
	return ok, nil
}

// isScriptingRefused reports whether Redis refused to run a script
// (NOPERM from an ACL, or EVAL disabled or renamed).
func isScriptingRefused(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "NOPERM") || strings.Contains(msg, "unknown command")
}

// RefreshSession rewrites a live session with SET XX.
func (s *Store) RefreshSession(ctx context.Context, sess store.Session, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("refresh session: ttl must be positive, got %v", ttl)
	}
	b, err := json.Marshal(sess)
	if err != nil {
		return false, fmt.Errorf("encode session: %w", err)
	}
	ok, err := s.rdb.SetXX(ctx, s.k.session(sess.ID), b, ttl).Result()
	if err != nil {
		return false, wrap("refresh session", err)
	}
	if ok && sess.User != "" {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ExpireGT(ctx, s.k.userSessions(sess.User), ttl)
			p.ExpireGT(ctx, s.k.sessionsOf(sess.User), ttl)
			return nil
		})
		if err != nil {
			return true, wrap("refresh session index", err)
		}
	}
	return ok, nil
}
