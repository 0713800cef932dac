package cached_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/storetest"
)

// Two instances on one Redis Cluster, each with its cache. Revocation
// must take effect on the other instance's very next read whichever
// master holds the record: the account and session on the master of
// the account's shard, roles on the master of {config}, revocations on
// that of {certs}. Between changes the reader serves from memory again.
func TestCached_TwoInstancesOnACluster_WriteOnAnyMasterTakesEffectOnTheOthersNextRead(t *testing.T) {
	ctx := t.Context()
	c := storetest.StartCluster(t)
	var masters []*redis.Client
	for _, addr := range c.Addrs {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		masters = append(masters, rdb)
	}
	// An account whose shard is not on the master of {config}.
	config := ownerOf(t, masters[0], "{config}")
	var user, userMaster string
	for i := 0; user == ""; i++ {
		name := fmt.Sprintf("alice%d", i)
		if m := ownerOf(t, masters[0], "{"+store.Shard(name)+"}"); m != config {
			user, userMaster = name, m
		}
	}
	t.Logf("account and session on %s, roles on %s, revocations on %s", userMaster, config, ownerOf(t, masters[0], "{certs}"))

	a := wrap(t, openRedis(t, c.URL))
	b := wrap(t, openRedis(t, c.URL))
	sid, serial := store.SessionID(user, "s1"), "c0ffee"
	setUp(t, b, user, sid, serial)

	waitServedFromMemory(t, a, sid, masters...)
	if err := b.UpdateAccount(ctx, user, func(acct *store.Account) error { acct.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if v, err := a.View(ctx, sid); err != nil || !v.Account.Disabled {
		t.Fatalf("A's View right after B disabled the account = %+v, %v; want it disabled", v.Account, err)
	}

	waitServedFromMemory(t, a, sid, masters...)
	if err := b.PutRole(ctx, store.Role{Name: "employee", RequireCertificate: true}); err != nil {
		t.Fatal(err)
	}
	v, err := a.View(ctx, sid)
	if i := slices.IndexFunc(v.Roles, func(r store.Role) bool { return r.Name == "employee" }); err != nil || i < 0 || !v.Roles[i].RequireCertificate {
		t.Fatalf("A's View right after B changed the role = %+v, %v; want it to require a certificate", v.Roles, err)
	}

	waitUntil(t, "a revocation check served from the cache", func() bool {
		if revoked, err := a.IsRevoked(ctx, "issuer", serial); err != nil || revoked {
			return false
		}
		before := keyReads(ctx, masters...)
		revoked, err := a.IsRevoked(ctx, "issuer", serial)
		return err == nil && !revoked && before >= 0 && keyReads(ctx, masters...) == before
	})
	if _, err := b.RevokeCertificate(ctx, serial, time.Now(), "lost"); err != nil {
		t.Fatal(err)
	}
	if revoked, err := a.IsRevoked(ctx, "issuer", serial); err != nil || !revoked {
		t.Fatalf("A's IsRevoked right after B revoked the certificate = %v, %v; want true", revoked, err)
	}

	waitServedFromMemory(t, a, sid, masters...)
	if err := b.DeleteSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if v, err := a.View(ctx, sid); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("A's View right after B ended the session = %+v, %v; want store.ErrNotFound", v.Session, err)
	}
}

// ownerOf returns the address of the master that serves key's slot.
func ownerOf(t *testing.T, rdb *redis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			return r.Nodes[0].Addr
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return ""
}
