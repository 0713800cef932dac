package redisstore

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/storetest"
)

// On a Cluster an account is created in two steps on two servers: its
// name listed, then its record written. A listing that runs between the
// two skips the name, and must not drop it: the account would then be
// missing from every later listing and from Accounts, where a sign-in
// with a certificate looks for every account the certificate names.
func TestRedisStore_ClusterListingDuringACreation_KeepsTheName(t *testing.T) {
	c := storetest.StartCluster(t)
	s, err := Open(t.Context(), c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()

	// createInCluster's first step: the name listed, no record yet.
	if err := s.rdb.ZAdd(ctx, s.k.accountNames, redis.Z{Member: "alice"}).Err(); err != nil {
		t.Fatal(err)
	}
	page, err := s.ListAccounts(ctx, store.ListQuery{Limit: 10})
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("ListAccounts while alice has no record = %+v, %v; want no account", page.Items, err)
	}
	// Its second step: the record.
	b, _ := json.Marshal(store.Account{Name: "alice", Roles: []string{"employee"}})
	if err := s.rdb.SetNX(ctx, s.k.account("alice"), b, 0).Err(); err != nil {
		t.Fatal(err)
	}

	accts, err := s.Accounts(ctx)
	if err != nil || !slices.ContainsFunc(accts, func(a store.Account) bool { return a.Name == "alice" }) {
		t.Errorf("Accounts after alice's creation ended = %+v, %v; want alice", accts, err)
	}
	page, err = s.ListAccounts(ctx, store.ListQuery{Limit: 10})
	if err != nil || len(page.Items) != 1 || page.Items[0].Name != "alice" {
		t.Errorf("ListAccounts after alice's creation ended = %+v, %v; want alice", page.Items, err)
	}
}
