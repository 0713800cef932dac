package tests

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/store/storetest"
)

// An operator's day on a Redis Cluster: "gatehouse init" and the command
// line on a redis+cluster:// URL, two portal instances on it, a sign-in
// with the admin's certificate on one and an employee's on the other,
// forward auth, admin lists, emails unique across the cluster, a change
// on one instance in force on the other at once, /readyz naming the
// server that is down, and a server that came back empty noticed.
func TestCluster_TwoInstancesOnOneCluster(t *testing.T) {
	t.Parallel()
	checkTwoInstances(t, storetest.StartCluster(t))
}

// The same on a cluster whose nodes announce host names, as in
// Kubernetes: the portal reaches the masters by the names the cluster
// gives them, and /readyz names a server by that name too.
func TestCluster_HostNamesAnnounced_TwoInstancesOnOneCluster(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.AnnounceHostNames()...)
	if name := c.Announced(2); !strings.HasPrefix(name, "localhost:") {
		t.Fatalf("the cluster names master 2 %s, want its announced host name", name)
	}
	checkTwoInstances(t, c)
}

// checkTwoInstances is TestCluster_TwoInstancesOnOneCluster on c.
func checkTwoInstances(t *testing.T, c *storetest.Cluster) {
	dir := t.TempDir()
	one := &portal{Data: filepath.Join(dir, "data"), StoreURL: c.URL, bin: gatehouseBinary(t), logDir: dir}
	one.cli(t, "", "init")
	one.start(t)
	two := &portal{Data: one.Data, StoreURL: c.URL, bin: one.bin, logDir: t.TempDir()}
	two.start(t)

	cert := one.adminCert(t)
	admin := one.client(t, &cert)
	wantRedirect(t, admin.login(t, "admin", one.AdminPassword), "/")
	if s := admin.session(t); !slices.Contains(s.EffectiveRoles, "admin") {
		t.Fatalf("the admin's session on the cluster = %+v, want admin in effect", s)
	}
	one.cli(t, bobPassword+"\n", "user", "add", "bob", "--role", "employee", "--email", "bob@example.com", "--password-stdin")
	if stderr := one.cliFails(t, "user", "add", "carol", "--role", "employee", "--email", "BOB@example.com"); !strings.Contains(stderr, "email") {
		t.Errorf("user add with bob's email in other case: %q, want a refusal naming the email", stderr)
	}
	if out := one.cli(t, "", "user", "list"); !strings.Contains(out, "bob") || !strings.Contains(out, "admin") {
		t.Errorf("gatehouse user list on the cluster:\n%s", out)
	}

	wantStatus(t, admin.jsonRequest(t, http.MethodPut, "/api/admin/apps/wiki", map[string]any{"url": "https://wiki.gatehouse.test/", "roles": []string{"employee"}}), http.StatusCreated)
	bob := two.client(t, nil)
	wantRedirect(t, bob.login(t, "bob", bobPassword), "/")
	verify := func() response {
		req := bob.newRequest(t, http.MethodGet, "/auth/verify", nil)
		req.Header.Set("X-Original-URL", "https://wiki.gatehouse.test/")
		return send(t, bob.jar, req)
	}
	wantStatus(t, verify(), http.StatusOK)

	var list struct {
		Sessions []struct{ User string }
		Next     string
	}
	decodeJSON(t, admin.get(t, "/api/admin/sessions?limit=1"), &list)
	if len(list.Sessions) != 1 || list.Next == "" {
		t.Errorf("first page of sessions by 1 = %+v, want one session and a next", list)
	}
	decodeJSON(t, admin.get(t, "/api/admin/sessions?limit=1&cursor="+list.Next), &list)
	if len(list.Sessions) != 1 || list.Sessions[0].User != "bob" {
		t.Errorf("second page of sessions = %+v, want bob's", list)
	}

	// Disabled on instance one: bob's next request on instance two is
	// refused.
	wantStatus(t, admin.jsonRequest(t, http.MethodPatch, "/api/admin/users/bob", map[string]any{"disabled": true}), http.StatusOK)
	if r := verify(); r.Status == http.StatusOK {
		t.Errorf("verify on instance two after bob was disabled on instance one: %d, want a refusal", r.Status)
	}

	// A master down: /readyz is 503 and names it, as the cluster does.
	down := c.Announced(2)
	c.Kill(2)
	var ready struct{ Code, Server string }
	resp := two.client(t, nil).get(t, "/readyz")
	wantStatus(t, resp, http.StatusServiceUnavailable)
	json.Unmarshal([]byte(resp.Body), &ready)
	if ready.Code != "unavailable" || ready.Server != down {
		t.Errorf("/readyz with %s down = %s, want code unavailable and the server named", down, resp.Body)
	}
	// Back, but empty (no persistence): the store lost part of its
	// data, and /readyz says where.
	c.Node(2).Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp = two.client(t, nil).get(t, "/readyz")
		if strings.Contains(resp.Body, "data_lost") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after %s came back empty: %d %s, want 503 data_lost", down, resp.Status, resp.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(resp.Body, down) {
		t.Errorf("/readyz after %s came back empty does not name it: %s", down, resp.Body)
	}
}
