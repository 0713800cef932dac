package redisstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

// shards returns the shards that have a marker of their own: every one
// on a Cluster, one ("") on one server.
func (s *Store) shards() []string {
	if !s.k.cluster {
		return []string{""}
	}
	out := make([]string, store.Shards)
	for i := range out {
		out[i] = store.ShardNumber(i)
	}
	return out
}

// Mark writes the marker: one on a single server, one per shard on a
// Cluster (in one pipeline, each write going to the server that holds
// the shard).
func (s *Store) Mark(ctx context.Context) error {
	value := "marked " + time.Now().UTC().Format(time.RFC3339)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, shard := range s.shards() {
			p.SetNX(ctx, s.k.marker(shard), value, 0)
		}
		return nil
	})
	if err != nil {
		return wrap("mark the store", err)
	}
	return nil
}

// CheckMarker reports whether the marker is there: for an account, its
// shard's; else every shard's. On a Cluster the error names the servers
// that hold the shards whose markers are gone.
func (s *Store) CheckMarker(ctx context.Context, account string) error {
	shards := s.shards()
	if account != "" && s.k.cluster {
		shards = []string{store.Shard(account)}
	}
	missing, err := s.missingMarkers(ctx, shards)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	if !s.k.cluster {
		return fmt.Errorf("the marker written when the store was set up is missing: %w", store.ErrDataLost)
	}
	servers := map[string]bool{}
	for _, shard := range missing {
		if c, err := s.rdb.(*redis.ClusterClient).MasterForKey(ctx, s.k.marker(shard)); err == nil {
			servers[c.Options().Addr] = true
		}
	}
	if len(missing) < len(shards) && account == "" {
		return fmt.Errorf("the marker written when the store was set up is missing for %d of %d shards, held by %s: %w (%w)",
			len(missing), len(shards), strings.Join(slices.Sorted(maps.Keys(servers)), ", "), store.ErrDataLost, store.ErrPartlyLost)
	}
	return fmt.Errorf("the marker written when the store was set up is missing for %d of %d shards, held by %s: %w",
		len(missing), len(shards), strings.Join(slices.Sorted(maps.Keys(servers)), ", "), store.ErrDataLost)
}

// missingMarkers returns the shards among shards whose marker is gone.
func (s *Store) missingMarkers(ctx context.Context, shards []string) ([]string, error) {
	cmds := make([]*redis.IntCmd, len(shards))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, shard := range shards {
			cmds[i] = p.Exists(ctx, s.k.marker(shard))
		}
		return nil
	})
	if err != nil {
		return nil, wrap("check the store's marker", err)
	}
	var missing []string
	for i, c := range cmds {
		if c.Val() == 0 {
			missing = append(missing, shards[i])
		}
	}
	return missing, nil
}

// markOnUpgrade marks a store written before markers existed: one that
// holds accounts but no marker at all. A store without accounts stays
// unmarked, to be set up by "gatehouse init" or reported as lost; so
// does a Cluster that lost some markers (a server that lost its data).
func (s *Store) markOnUpgrade(ctx context.Context) error {
	shards := s.shards()
	missing, err := s.missingMarkers(ctx, shards)
	if err != nil || len(missing) < len(shards) {
		return err
	}
	n, err := s.rdb.ZCard(ctx, s.k.accountNames).Result()
	if err != nil {
		return wrap("count accounts", err)
	}
	if n == 0 {
		return nil
	}
	return s.Mark(ctx)
}

// server is what a connection learnt about one Redis server.
type server struct {
	// runID changes each time the server restarts.
	runID string
	persisted
}

// persisted is what a server's settings say of its persistence.
type persisted struct {
	// kept reports whether the server keeps its data on disk; detail
	// says which settings were found.
	kept   bool
	detail string
	// unsure is set when CONFIG is not available: only the append-only
	// file could be checked, and RDB snapshots may be on.
	unsure bool
	// evicts, when set, says how the server drops keys when it is full
	// (a memory limit with a policy other than noeviction).
	evicts string
}

// servers remembers, by address, what the last connection to each Redis
// server found.
type servers struct {
	mu sync.Mutex
	m  map[string]server
}

// onConnect runs on every new connection (go-redis's OnConnect): after a
// restart of Redis the client reconnects, and the server's persistence
// is read again there and then. It fails the connection only when the
// fence counter's era cannot be checked although the server's run can
// be read (rollEra).
func (s *Store) onConnect(ctx context.Context, cn *redis.Conn) error {
	var info *redis.ClientInfoCmd
	var serverInfo, memoryInfo *redis.StringCmd
	cn.Pipelined(ctx, func(p redis.Pipeliner) error {
		info = p.ClientInfo(ctx)
		serverInfo = p.Info(ctx, "server")
		memoryInfo = p.Info(ctx, "memory")
		return nil
	})
	addr := "redis"
	if ci, err := info.Result(); err == nil && ci.LAddr != "" {
		addr = ci.LAddr
	}
	if s.fences {
		// Before the connection counts a fence mark (fence.go). A user
		// that may not run INFO cannot tell a restart: its fences refuse
		// to count while instances hold leases (Store.fence).
		run := infoField(serverInfo.Val(), "run_id")
		s.noRun.Store(run == "")
		if run != "" {
			if err := rollEra(ctx, cn, s.k.fenceSeq(), run); err != nil {
				return err
			}
		}
	}
	p, err := persistence(ctx, cn)
	if err != nil {
		return nil // the connection is used all the same; Warnings says nothing new
	}
	p.evicts = eviction(memoryInfo.Val())
	s.servers.mu.Lock()
	defer s.servers.mu.Unlock()
	if s.servers.m == nil {
		s.servers.m = make(map[string]server)
	}
	s.servers.m[addr] = server{runID: infoField(serverInfo.Val(), "run_id"), persisted: p}
	return nil
}

// eviction says how a server whose INFO memory is info drops keys when
// it is full, or "" when it never does: no memory limit, or the policy
// noeviction (a write then fails, and the portal says so). Any other
// policy drops keys the portal relies on, silently: a revocation, a
// throttle's count, the mark that a TOTP code was used (volatile-*
// policies drop the keys that expire, which are the latter two).
// INFO answers even where CONFIG is disabled.
func eviction(info string) string {
	limit, policy := infoField(info, "maxmemory"), infoField(info, "maxmemory_policy")
	if limit == "" || limit == "0" || policy == "" || policy == "noeviction" {
		return ""
	}
	return fmt.Sprintf("maxmemory-policy %s, maxmemory %s bytes", policy, limit)
}

// infoField returns the value of field in the text INFO answers.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// Warning is something an operator must fix about a Redis server.
type Warning struct {
	// Text says it in plain words, for the log and /readyz.
	Text string
	// Unsure is set when the server may keep its data after all: its
	// append-only file is off and its snapshot settings cannot be read.
	Unsure bool
	// Eviction is set for a server that drops keys when it is full.
	Eviction bool
}

// PersistenceWarnings returns what an operator must fix about the Redis
// servers the store's connections have found so far: each that keeps
// nothing on disk, where a restart loses every account, role and
// certificate record, and each that drops keys when it is full. It
// reflects the latest connection to each server, so a server restarted
// with other settings is seen as soon as the client reconnects.
func (s *Store) PersistenceWarnings() []Warning {
	s.servers.mu.Lock()
	defer s.servers.mu.Unlock()
	var out []Warning
	for _, addr := range slices.Sorted(maps.Keys(s.servers.m)) {
		sv := s.servers.m[addr]
		where := "Redis"
		if len(s.servers.m) > 1 {
			where = "Redis at " + addr
		}
		if sv.evicts != "" {
			out = append(out, Warning{Eviction: true, Text: where + " drops keys when its memory is full (" + sv.evicts + "): it can silently lose a certificate revocation, a throttle's count of failed sign-ins or the mark that a TOTP code was used; set maxmemory-policy noeviction"})
		}
		switch {
		case sv.kept:
		case sv.unsure:
			out = append(out, Warning{Unsure: true, Text: where + " may keep nothing on disk: its append-only file is off, and its snapshot settings cannot be read (CONFIG is disabled); unless RDB snapshots are on, a restart of it loses every account, role and certificate record it holds; turn on appendonly yes"})
		default:
			out = append(out, Warning{Text: where + " keeps nothing on disk (" + sv.detail + "): a restart of it loses every account, role and certificate record it holds; turn on appendonly yes"})
		}
	}
	return out
}

// Persistence reports whether Redis keeps its data across a restart
// (append-only file or RDB snapshots), with the setting it found. When
// Redis does not let us read its configuration (CONFIG is often disabled
// by managed services), it falls back to INFO, which tells only about the
// append-only file.
func (s *Store) Persistence(ctx context.Context) (bool, string, error) {
	p, err := persistence(ctx, s.rdb)
	return p.kept, p.detail, err
}

func persistence(ctx context.Context, rdb redis.Cmdable) (persisted, error) {
	cfg, err := rdb.ConfigGet(ctx, "appendonly").Result()
	if err == nil {
		saves, serr := rdb.ConfigGet(ctx, "save").Result()
		if serr == nil {
			aof, save := cfg["appendonly"], strings.TrimSpace(saves["save"])
			return persisted{kept: aof == "yes" || save != "", detail: fmt.Sprintf("appendonly %s, save %q", aof, save)}, nil
		}
	}
	info, ierr := rdb.Info(ctx, "persistence").Result()
	if ierr != nil {
		return persisted{}, wrap("read persistence settings", ierr)
	}
	if strings.Contains(info, "aof_enabled:1") {
		return persisted{kept: true, detail: "aof_enabled:1"}, nil
	}
	return persisted{detail: "aof_enabled:0 (CONFIG is not available, so RDB snapshots could not be checked)", unsure: true}, nil
}
