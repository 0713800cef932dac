package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gatehouse/store"
)

// sessionExpiryWait bounds how long the expiry check polls for a session
// stored with a one-second ttl to disappear. It is a limit on polling,
// not a timing assertion: the check passes as soon as the session is gone.
const sessionExpiryWait = 5 * time.Second

// Run is the contract every store.Store backend must pass. Each subtest
// calls open for a fresh, empty store of its own; open registers whatever
// cleanup the store needs with t.Cleanup. The subtests run one after the
// other, so open may reuse one backing service as long as it empties it.
//
// Times are compared with time.Time.Equal (go-cmp does so by itself), so a
// backend may drop the monotonic clock reading and the location.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"Account/MissingIsNotFound", testAccountMissing},
		{"Account/CreateThenReadRoundTrips", testAccountRoundTrip},
		{"Account/CreateTwiceIsErrExists", testAccountCreateTwice},
		{"Account/IDGivenKeptAndNeverReused", testAccountID},
		{"Accounts/EmptyStoreHasNone", testAccountsEmpty},
		{"Accounts/SortedByName", testAccountsSorted},
		{"UpdateAccount/AppliesFn", testUpdateAccountApplies},
		{"UpdateAccount/FnErrorReturnedUnchangedAndNothingWritten", testUpdateAccountFnError},
		{"UpdateAccount/MissingIsNotFound", testUpdateAccountMissing},
		{"UpdateAccount/ConcurrentUpdatesAreNotLost", testUpdateAccountConcurrent},
		{"Role/MissingIsNotFound", testRoleMissing},
		{"Role/PutThenReadRoundTrips", testRoleRoundTrip},
		{"PutRole/Replaces", testPutRoleReplaces},
		{"Roles/SortedByName", testRolesSorted},
		{"Apps/PutReadReplaceListDelete", testApps},
		{"View/SessionAccountRolesApps", testView},
		{"Claim/OneHolderUntilExpiry", testClaim},
		{"RefreshSession/OnlyLiveSessions", testRefreshSession},
		{"Certificates/EmptyStoreHasNone", testCertificatesEmpty},
		{"Certificates/FilteredByUserOldestFirst", testCertificatesFiltered},
		{"Session/MissingIsNotFound", testSessionMissing},
		{"Session/PutThenReadRoundTrips", testSessionRoundTrip},
		{"PutSession/Replaces", testPutSessionReplaces},
		{"PutSession/NonPositiveTTLIsError", testPutSessionBadTTL},
		{"DeleteSession/MissingIsNoError", testDeleteSessionMissing},
		{"DeleteSession/ThenNotFound", testDeleteSession},
		{"Session/ExpiresAfterTTL", testSessionExpires},
		{"Ping/Answers", testPing},
		{"DeleteRole/RemovesAndMissingIsNoError", testDeleteRole},
		{"RevokeCertificate/MarksAndIsRevoked", testRevokeCertificate},
		{"RevokeCertificate/UnknownIsNotFound", testRevokeUnknown},
		{"RevokeCertificate/RecordWithoutIssuerCoversTheSerial", testRevokeWithoutIssuer},
		{"Audit/NewestFirstPaged", testAuditPaged},
		{"Account/PinsRoundTrip", testAccountPins},
		{"UseTOTPStep/FirstUseOnlyAndExpires", testUseTOTPStep},
		{"Failures/CountResetAndExpire", testFailures},
		{"SetMetaOnce/KeepsFirstValue", testSetMetaOnce},
		{"DeleteUserSessions/OnlyThatUser", testDeleteUserSessions},
		{"DeleteAccount/RemovesAndMissingIsNotFound", testDeleteAccount},
		{"Sessions/OfOneUserOldestFirst", testSessionsOfUser},
		{"Audit/Filters", testAuditFilters},
		{"CreateAccount/ConcurrentCreatesOneWins", testCreateAccountConcurrent},
		{"UpdateAccount/KeepsTheName", testUpdateAccountKeepsName},
		{"DeleteAccount/LeavesSessions", testDeleteAccountLeavesSessions},
		{"PutSession/ReplacingRenewsTTL", testPutSessionRenewsTTL},
		{"Sessions/ExpiredAreNotListedOrCounted", testSessionsExpired},
		{"UseTOTPStep/ConcurrentUsesOneWins", testUseTOTPStepConcurrent},
		{"Failures/ConcurrentAddsAllCount", testFailuresConcurrent},
		{"Failures/EachFailureRenewsTTL", testFailuresRenewTTL},
		{"SetMetaOnce/ConcurrentCallsAgree", testSetMetaOnceConcurrent},
		{"AppendAudit/ConcurrentAppendsAllKeptAndPaged", testAuditConcurrent},
		{"Audit/BeforeCombinesWithFilters", testAuditBeforeWithFilters},
		{"Audit/LimitDefaultsAndCapsAt1000", testAuditLimit},
		{"RaiseCounter/NeverGoesDown", testRaiseCounter},
		{"RaiseCounter/ConcurrentRaisesKeepTheHighest", testRaiseCounterConcurrent},
		{"CreateAccount/EmailTakenIgnoringASCIICase", testCreateAccountEmailTaken},
		{"CreateAccount/NoEmailNeverConflicts", testCreateAccountNoEmail},
		{"CreateAccount/UnicodeCaseIsNotFolded", testCreateAccountUnicodeEmail},
		{"UpdateAccount/EmailTakenIgnoringASCIICase", testUpdateAccountEmailTaken},
		{"UpdateAccount/FreedEmailCanBeTakenAgain", testEmailFreed},
		{"CreateAccount/ConcurrentCreatesForOneEmailOneWins", testCreateAccountEmailConcurrent},
		{"UpdateAccount/ConcurrentUpdatesToOneEmailOneWins", testUpdateAccountEmailConcurrent},
		{"Marker/MissingUntilMarked", testMarker},
		{"OIDCClients/PutReadReplaceListDelete", testOIDCClients},
		{"OIDCKeys/PutListDelete", testOIDCKeys},
		{"Ticket/PutReadDeleteAndExpire", testTickets},
		{"TakeTicket/OnceOnly", testTakeTicket},
		{"TakeTicket/ConcurrentTakesOneWins", testTakeTicketConcurrent},
		{"ListAccounts/PagesInOrder", testListAccounts},
		{"ListSessions/PagesInOrderOfUserTimeAndID", testListSessions},
		{"ListSessions/OneUsersPages", testListSessionsOfUser},
		{"ListCertificates/PagesInOrderOfIssue", testListCertificates},
		{"List/BadCursorsAreErrBadCursor", testListBadCursors},
		{"Audit/NextContinuesEveryFilter", testAuditNext},
		{"FailuresOf/CountsInOrder", testFailuresOf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.test(t, s)
		})
	}
}

// when is a fixed time with a non-UTC zone and sub-second precision, so
// that backends must keep the instant, not just the wall clock in UTC.
var when = time.Date(2026, 5, 3, 14, 15, 16, 123456789, time.FixedZone("CEST", 2*60*60))

func sampleAccount(name string) store.Account {
	return store.Account{
		Name:               name,
		ID:                 "Asample-" + name,
		Email:              name + "@example.com",
		PasswordHash:       "$2a$04$abcdefghijklmnopqrstuuJ9cQ1YkQ6u0n6Wm8u3nK2m0M6o7eN9e",
		Roles:              []string{"employee", "helpdesk"},
		Disabled:           true,
		MustChangePassword: true,
		PinnedFingerprints: []string{"sha256:" + fmt.Sprintf("%064x", 7)},
		PinnedKeys:         []string{"sha256:" + fmt.Sprintf("%064x", 8)},
		TOTPSecret:         "v1:sealed-secret",
		TOTPPending:        "v1:sealed-pending",
		RecoveryCodes:      []string{"hash1", "hash2"},
		TOTPEnrolledAt:     when.Add(time.Minute),
		Renewed:            []string{"ab", "cd"},
		Enrollments: []store.Enrollment{{ID: "e1", Name: "Alice's <Pixel>", Status: store.EnrollmentApproved,
			CSR: "-----BEGIN CERTIFICATE REQUEST-----\n...", Requester: "hmac", RequestedFrom: "192.0.2.7",
			UserAgent: "Mozilla/5.0", CreatedAt: when, ExpiresAt: when.Add(15 * time.Minute), WrongCodes: 2,
			ApprovedBy: "alice", ApprovedWith: "certificate", DecidedAt: when.Add(time.Minute), Serial: "ab"}},
		CreatedAt: when,
		UpdatedAt: when.Add(time.Hour),
	}
}

// sid is the ID of the test's session named id of user, made as the
// portal makes session IDs (store.SessionID): a Redis Cluster keeps a
// session in its account's shard, which the ID names.
func sid(user, id string) string { return store.SessionID(user, id) }

// plainID is the name a test gave a session: its ID without the shard.
func plainID(s store.Session) string {
	_, name, _ := strings.Cut(s.ID, ".")
	return name
}

// sampleSession is a session of user, with the ID sid(user, id).
func sampleSession(id, user string) store.Session {
	return store.Session{
		ID:              sid(user, id),
		User:            user,
		Factors:         []string{"password", "certificate"},
		CertFingerprint: "sha256:" + fmt.Sprintf("%064x", 42),
		ClientAddr:      "192.0.2.7",
		CreatedAt:       when,
		LastSeen:        when.Add(time.Minute),
		ExpiresAt:       when.Add(12 * time.Hour),
	}
}

func mustCreateAccount(t *testing.T, s store.Store, a store.Account) {
	t.Helper()
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%q): %v", a.Name, err)
	}
}

func mustAccount(t *testing.T, s store.Store, name string) store.Account {
	t.Helper()
	a, err := s.Account(t.Context(), name)
	if err != nil {
		t.Fatalf("Account(%q): %v", name, err)
	}
	return a
}

func names[T any](items []T, name func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = name(it)
	}
	return out
}

func testAccountMissing(t *testing.T, s store.Store) {
	_, err := s.Account(t.Context(), "nobody")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Account(missing) error = %v, want store.ErrNotFound", err)
	}
}

func testAccountRoundTrip(t *testing.T, s store.Store) {
	want := sampleAccount("alice")
	mustCreateAccount(t, s, want)
	got := mustAccount(t, s, "alice")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Account after CreateAccount (-want +got):\n%s", diff)
	}
}

func testAccountCreateTwice(t *testing.T, s store.Store) {
	first := sampleAccount("alice")
	mustCreateAccount(t, s, first)
	second := sampleAccount("alice")
	second.Email = "other@example.com"
	if err := s.CreateAccount(t.Context(), second); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second CreateAccount error = %v, want store.ErrExists", err)
	}
	if diff := cmp.Diff(first, mustAccount(t, s, "alice")); diff != "" {
		t.Errorf("the failed CreateAccount changed the account (-want +got):\n%s", diff)
	}
}

// An account made without an ID gets one that no update changes, and an
// account made again under the same name after a delete gets another.
func testAccountID(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := sampleAccount("alice")
	a.ID = ""
	mustCreateAccount(t, s, a)
	first := mustAccount(t, s, "alice").ID
	if !strings.HasPrefix(first, "A") || len(first) < 20 {
		t.Fatalf("ID of a new account = %q, want a random one starting A", first)
	}
	if err := s.UpdateAccount(ctx, "alice", func(a *store.Account) error {
		a.ID = "Achosen"
		a.Roles = []string{"employee"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := mustAccount(t, s, "alice"); got.ID != first || !slices.Equal(got.Roles, []string{"employee"}) {
		t.Errorf("after an update that set ID: ID %q, roles %q; want ID %q kept and the roles changed", got.ID, got.Roles, first)
	}
	if err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	mustCreateAccount(t, s, a)
	if again := mustAccount(t, s, "alice").ID; again == first || !strings.HasPrefix(again, "A") {
		t.Errorf("ID of an account made again under the same name = %q, want a new one (was %q)", again, first)
	}
}

func testAccountsEmpty(t *testing.T, s store.Store) {
	got, err := s.Accounts(t.Context())
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("Accounts of an empty store = %v, want none", got)
	}
}

func testAccountsSorted(t *testing.T, s store.Store) {
	for _, n := range []string{"mallory", "alice", "zoe", "bob", "Carol"} {
		mustCreateAccount(t, s, sampleAccount(n))
	}
	got, err := s.Accounts(t.Context())
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	want := []string{"Carol", "alice", "bob", "mallory", "zoe"} // byte order
	if diff := cmp.Diff(want, names(got, func(a store.Account) string { return a.Name })); diff != "" {
		t.Errorf("Accounts names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sampleAccount("bob"), got[2]); diff != "" {
		t.Errorf("Accounts()[2] (-want +got):\n%s", diff)
	}
}

func testUpdateAccountApplies(t *testing.T, s store.Store) {
	mustCreateAccount(t, s, sampleAccount("alice"))
	later := when.Add(48 * time.Hour)
	err := s.UpdateAccount(t.Context(), "alice", func(a *store.Account) error {
		a.Roles = append(a.Roles, "admin")
		a.Disabled = false
		a.MustChangePassword = false
		a.PasswordHash = "new hash"
		a.UpdatedAt = later
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateAccount: %v", err)
	}
	want := sampleAccount("alice")
	want.Roles = []string{"employee", "helpdesk", "admin"}
	want.Disabled = false
	want.MustChangePassword = false
	want.PasswordHash = "new hash"
	want.UpdatedAt = later
	if diff := cmp.Diff(want, mustAccount(t, s, "alice")); diff != "" {
		t.Errorf("Account after UpdateAccount (-want +got):\n%s", diff)
	}
}

func testUpdateAccountFnError(t *testing.T, s store.Store) {
	before := sampleAccount("alice")
	mustCreateAccount(t, s, before)
	errRefused := errors.New("refused by fn")
	err := s.UpdateAccount(t.Context(), "alice", func(a *store.Account) error {
		a.Email = "changed@example.com"
		a.Roles = nil
		return errRefused
	})
	if err != errRefused {
		t.Errorf("UpdateAccount error = %v, want fn's error returned unchanged", err)
	}
	if diff := cmp.Diff(before, mustAccount(t, s, "alice")); diff != "" {
		t.Errorf("UpdateAccount wrote despite fn's error (-want +got):\n%s", diff)
	}
}

func testUpdateAccountMissing(t *testing.T, s store.Store) {
	called := false
	err := s.UpdateAccount(t.Context(), "nobody", func(a *store.Account) error {
		called = true
		return nil
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateAccount(missing) error = %v, want store.ErrNotFound", err)
	}
	if called {
		t.Error("UpdateAccount(missing) called fn")
	}
	if _, err := s.Account(t.Context(), "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after UpdateAccount(missing), Account error = %v, want store.ErrNotFound", err)
	}
}

func testUpdateAccountConcurrent(t *testing.T, s store.Store) {
	const writers = 20
	a := sampleAccount("alice")
	a.Roles = nil
	mustCreateAccount(t, s, a)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			role := fmt.Sprintf("role-%02d", i)
			errs <- s.UpdateAccount(context.Background(), "alice", func(a *store.Account) error {
				a.Roles = append(a.Roles, role)
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent UpdateAccount: %v", err)
		}
	}
	got := mustAccount(t, s, "alice").Roles
	slices.Sort(got)
	var want []string
	for i := range writers {
		want = append(want, fmt.Sprintf("role-%02d", i))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("roles after %d concurrent updates, one role each (-want +got):\n%s", writers, diff)
	}
}

func testRoleMissing(t *testing.T, s store.Store) {
	if _, err := s.Role(t.Context(), "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Role(missing) error = %v, want store.ErrNotFound", err)
	}
}

func testRoleRoundTrip(t *testing.T, s store.Store) {
	want := store.Role{Name: "admin", Description: "runs the portal", RequireCertificate: true, RequireTOTP: true}
	if err := s.PutRole(t.Context(), want); err != nil {
		t.Fatalf("PutRole: %v", err)
	}
	got, err := s.Role(t.Context(), "admin")
	if err != nil {
		t.Fatalf("Role: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Role after PutRole (-want +got):\n%s", diff)
	}
}

func testPutRoleReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutRole(ctx, store.Role{Name: "admin", Description: "old", RequireCertificate: true, RequireTOTP: true}); err != nil {
		t.Fatalf("PutRole: %v", err)
	}
	want := store.Role{Name: "admin", RequireCertificate: false}
	if err := s.PutRole(ctx, want); err != nil {
		t.Fatalf("PutRole again: %v", err)
	}
	got, err := s.Role(ctx, "admin")
	if err != nil {
		t.Fatalf("Role: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Role after replacing PutRole (-want +got):\n%s", diff)
	}
	all, err := s.Roles(ctx)
	if err != nil {
		t.Fatalf("Roles: %v", err)
	}
	if diff := cmp.Diff([]store.Role{want}, all); diff != "" {
		t.Errorf("Roles after putting one role twice (-want +got):\n%s", diff)
	}
}

func testRolesSorted(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.Roles(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Roles of an empty store = %v, %v; want none, nil", got, err)
	}
	var want []store.Role
	for _, n := range []string{"helpdesk", "admin", "employee"} {
		r := store.Role{Name: n, Description: "the " + n + " role", RequireCertificate: n != "employee"}
		if err := s.PutRole(ctx, r); err != nil {
			t.Fatalf("PutRole(%q): %v", n, err)
		}
		want = append(want, r)
	}
	slices.SortFunc(want, func(a, b store.Role) int { return strings.Compare(a.Name, b.Name) })
	got, err := s.Roles(ctx)
	if err != nil {
		t.Fatalf("Roles: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Roles (-want +got):\n%s", diff)
	}
}

func testCertificatesEmpty(t *testing.T, s store.Store) {
	for _, user := range []string{"", "alice"} {
		got, err := s.Certificates(t.Context(), user)
		if err != nil {
			t.Fatalf("Certificates(%q): %v", user, err)
		}
		if len(got) != 0 {
			t.Errorf("Certificates(%q) of an empty store = %v, want none", user, got)
		}
	}
}

func testCertificatesFiltered(t *testing.T, s store.Store) {
	ctx := t.Context()
	cert := func(serial, user string, issued time.Duration) store.Certificate {
		return store.Certificate{
			Serial:      serial,
			Fingerprint: "sha256:" + fmt.Sprintf("%064s", serial),
			User:        user,
			Subject:     "CN=" + user + ",O=Gatehouse",
			NotBefore:   when.Add(issued - 5*time.Minute),
			NotAfter:    when.Add(issued + 365*24*time.Hour),
			IssuedAt:    when.Add(issued),
		}
	}
	// Serials sort in the opposite order from issue times, so a backend
	// that returns them by key order fails.
	certs := []store.Certificate{
		cert("0a", "alice", 3*time.Hour),
		cert("0b", "bob", 2*time.Hour),
		cert("0c", "alice", time.Hour),
		cert("0d", "alice", 2*time.Hour+time.Second),
		cert("0e", "bob", 0),
	}
	for _, c := range certs {
		if err := s.PutCertificate(ctx, c); err != nil {
			t.Fatalf("PutCertificate(%s): %v", c.Serial, err)
		}
	}
	for _, tc := range []struct {
		user string
		want []store.Certificate
	}{
		{"", []store.Certificate{certs[4], certs[2], certs[1], certs[3], certs[0]}},
		{"alice", []store.Certificate{certs[2], certs[3], certs[0]}},
		{"bob", []store.Certificate{certs[4], certs[1]}},
		{"carol", nil},
	} {
		got, err := s.Certificates(ctx, tc.user)
		if err != nil {
			t.Fatalf("Certificates(%q): %v", tc.user, err)
		}
		if len(tc.want) == 0 && len(got) == 0 {
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Certificates(%q) (-want +got):\n%s", tc.user, diff)
		}
	}
}

func testSessionMissing(t *testing.T, s store.Store) {
	if _, err := s.Session(t.Context(), "no-such-session"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Session(missing) error = %v, want store.ErrNotFound", err)
	}
}

func testSessionRoundTrip(t *testing.T, s store.Store) {
	want := sampleSession("s1", "alice")
	if err := s.PutSession(t.Context(), want, time.Hour); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	got, err := s.Session(t.Context(), sid("alice", "s1"))
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Session after PutSession (-want +got):\n%s", diff)
	}
}

func testPutSessionReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutSession(ctx, sampleSession("s1", "alice"), time.Hour); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	want := sampleSession("s1", "alice")
	want.LastSeen = when.Add(20 * time.Minute)
	want.Factors = []string{"password"}
	want.CertFingerprint = ""
	if err := s.PutSession(ctx, want, time.Hour); err != nil {
		t.Fatalf("PutSession again: %v", err)
	}
	got, err := s.Session(ctx, sid("alice", "s1"))
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Session after replacing PutSession (-want +got):\n%s", diff)
	}
}

func testPutSessionBadTTL(t *testing.T, s store.Store) {
	for _, ttl := range []time.Duration{0, -time.Second} {
		id := fmt.Sprintf("ttl%d", ttl)
		if err := s.PutSession(t.Context(), sampleSession(id, "alice"), ttl); err == nil {
			t.Errorf("PutSession with ttl %v succeeded, want an error", ttl)
		}
		if _, err := s.Session(t.Context(), sid("alice", id)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after PutSession with ttl %v, Session error = %v, want store.ErrNotFound", ttl, err)
		}
	}
}

func testDeleteSessionMissing(t *testing.T, s store.Store) {
	if err := s.DeleteSession(t.Context(), "no-such-session"); err != nil {
		t.Fatalf("DeleteSession(missing) = %v, want nil", err)
	}
}

func testDeleteSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"s1", "s2"} {
		if err := s.PutSession(ctx, sampleSession(id, "alice"), time.Hour); err != nil {
			t.Fatalf("PutSession(%s): %v", id, err)
		}
	}
	if err := s.DeleteSession(ctx, sid("alice", "s1")); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.Session(ctx, sid("alice", "s1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Session after DeleteSession error = %v, want store.ErrNotFound", err)
	}
	if _, err := s.Session(ctx, sid("alice", "s2")); err != nil {
		t.Errorf("deleting s1 affected s2 of the same user: %v", err)
	}
	if err := s.DeleteSession(ctx, sid("alice", "s1")); err != nil {
		t.Errorf("DeleteSession twice = %v, want nil", err)
	}
}

func testSessionExpires(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutSession(ctx, sampleSession("short", "alice"), time.Second); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	if err := s.PutSession(ctx, sampleSession("long", "alice"), time.Hour); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
	deadline := time.Now().Add(sessionExpiryWait)
	for {
		_, err := s.Session(ctx, sid("alice", "short"))
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("Session while waiting for expiry: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("session stored with a ttl of 1s is still there after %v", sessionExpiryWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Session(ctx, sid("alice", "long")); err != nil {
		t.Errorf("session with a ttl of 1h: %v", err)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testDeleteRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, r := range []store.Role{{Name: "a"}, {Name: "b", RequireTOTP: true}} {
		if err := s.PutRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRole(ctx, "a"); err != nil {
		t.Fatalf("DeleteRole: %v", err)
	}
	if _, err := s.Role(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted role: err = %v, want ErrNotFound", err)
	}
	roles, err := s.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(roles, func(r store.Role) string { return r.Name }); !slices.Equal(got, []string{"b"}) {
		t.Errorf("roles after delete = %q", got)
	}
	if err := s.DeleteRole(ctx, "never-existed"); err != nil {
		t.Errorf("DeleteRole of a missing role: %v", err)
	}
}

func testRevokeCertificate(t *testing.T, s store.Store) {
	ctx := t.Context()
	issuer := "sha256:" + fmt.Sprintf("%064x", 7)
	otherIssuer := "sha256:" + fmt.Sprintf("%064x", 8)
	fp := "sha256:" + fmt.Sprintf("%064x", 99)
	for _, c := range []store.Certificate{
		{Serial: "63", Issuer: issuer, Fingerprint: fp, User: "alice", IssuedAt: when},
		{Serial: "62", Issuer: issuer, Fingerprint: "sha256:" + fmt.Sprintf("%064x", 98), User: "alice", IssuedAt: when.Add(time.Second)},
	} {
		if err := s.PutCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if revoked, err := s.IsRevoked(ctx, issuer, "63"); err != nil || revoked {
		t.Fatalf("before revocation: IsRevoked = %v, %v", revoked, err)
	}
	got, err := s.RevokeCertificate(ctx, "63", when.Add(time.Hour), "laptop lost")
	if err != nil {
		t.Fatalf("RevokeCertificate: %v", err)
	}
	if got.Serial != "63" || got.Fingerprint != fp || !got.RevokedAt.Equal(when.Add(time.Hour)) || got.RevokeReason != "laptop lost" {
		t.Errorf("revoked record = %+v", got)
	}
	// The revocation is of the issuer and serial, whatever encoding
	// (fingerprint) a certificate arrives in.
	if revoked, err := s.IsRevoked(ctx, issuer, "63"); err != nil || !revoked {
		t.Errorf("after revocation: IsRevoked = %v, %v", revoked, err)
	}
	if revoked, err := s.IsRevoked(ctx, issuer, "62"); err != nil || revoked {
		t.Errorf("other serial: IsRevoked = %v, %v", revoked, err)
	}
	if revoked, err := s.IsRevoked(ctx, otherIssuer, "63"); err != nil || revoked {
		t.Errorf("same serial from another issuer: IsRevoked = %v, %v", revoked, err)
	}
	// Revoking again keeps the first time and reason.
	again, err := s.RevokeCertificate(ctx, "63", when.Add(2*time.Hour), "again")
	if err != nil || !again.RevokedAt.Equal(when.Add(time.Hour)) || again.RevokeReason != "laptop lost" {
		t.Errorf("second revocation = %+v, %v", again, err)
	}
	list, err := s.Certificates(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].RevokedAt.IsZero() || !list[1].RevokedAt.IsZero() {
		t.Errorf("Certificates after revocation = %+v, %v", list, err)
	}
}

// testRevokeWithoutIssuer covers records made before the issuer was
// kept: revoking one covers its serial from any issuer, never less.
func testRevokeWithoutIssuer(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutCertificate(ctx, store.Certificate{Serial: "a1", Fingerprint: "sha256:" + fmt.Sprintf("%064x", 5), User: "bob", IssuedAt: when}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeCertificate(ctx, "a1", when, "old record"); err != nil {
		t.Fatal(err)
	}
	for _, issuer := range []string{"sha256:" + fmt.Sprintf("%064x", 7), ""} {
		if revoked, err := s.IsRevoked(ctx, issuer, "a1"); err != nil || !revoked {
			t.Errorf("IsRevoked(%q, a1) = %v, %v; want true", issuer, revoked, err)
		}
	}
	if revoked, err := s.IsRevoked(ctx, "sha256:"+fmt.Sprintf("%064x", 7), "a2"); err != nil || revoked {
		t.Errorf("another serial: IsRevoked = %v, %v", revoked, err)
	}
}

func testRevokeUnknown(t *testing.T, s store.Store) {
	_, err := s.RevokeCertificate(t.Context(), "f00d", when, "x")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func testAuditPaged(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 5 {
		e := store.AuditEvent{Time: when.Add(time.Duration(i) * time.Second), Action: "login", Outcome: "success",
			Actor: fmt.Sprintf("user%d", i), ActorFactors: []string{"password"}, ClientAddr: "192.0.2.1", Notices: []string{"n"}}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	page1, err := items(s.Audit(ctx, store.AuditQuery{Limit: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(page1, func(e store.AuditEvent) string { return e.Actor }); !slices.Equal(got, []string{"user4", "user3", "user2"}) {
		t.Fatalf("page 1 = %q, want newest first", got)
	}
	if page1[0].ID == "" || !page1[0].Time.Equal(when.Add(4*time.Second)) || page1[0].ClientAddr != "192.0.2.1" {
		t.Errorf("event = %+v", page1[0])
	}
	page2, err := items(s.Audit(ctx, store.AuditQuery{Before: page1[2].ID, Limit: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(page2, func(e store.AuditEvent) string { return e.Actor }); !slices.Equal(got, []string{"user1", "user0"}) {
		t.Fatalf("page 2 = %q", got)
	}
}

func testAccountPins(t *testing.T, s store.Store) {
	a := sampleAccount("pinned")
	mustCreateAccount(t, s, a)
	got := mustAccount(t, s, "pinned")
	if !slices.Equal(got.PinnedFingerprints, a.PinnedFingerprints) || !slices.Equal(got.PinnedKeys, a.PinnedKeys) {
		t.Errorf("pins = %q %q, want %q %q", got.PinnedFingerprints, got.PinnedKeys, a.PinnedFingerprints, a.PinnedKeys)
	}
}

// pollUntil polls cond every 50ms until it is true or the limit passes.
func pollUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func testUseTOTPStep(t *testing.T, s store.Store) {
	ctx := t.Context()
	first, err := s.UseTOTPStep(ctx, "alice", 1000, time.Second)
	if err != nil || !first {
		t.Fatalf("first use = %v, %v", first, err)
	}
	again, err := s.UseTOTPStep(ctx, "alice", 1000, time.Second)
	if err != nil || again {
		t.Fatalf("second use = %v, %v; want false (replay)", again, err)
	}
	if other, err := s.UseTOTPStep(ctx, "bob", 1000, time.Second); err != nil || !other {
		t.Errorf("another user's same step = %v, %v", other, err)
	}
	if next, err := s.UseTOTPStep(ctx, "alice", 1001, time.Second); err != nil || !next {
		t.Errorf("next step = %v, %v", next, err)
	}
	if !pollUntil(sessionExpiryWait, func() bool {
		ok, err := s.UseTOTPStep(ctx, "alice", 1000, time.Second)
		return err == nil && ok
	}) {
		t.Error("the mark never expired")
	}
}

func testFailures(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.Failures(ctx, "totp:alice"); err != nil || n != 0 {
		t.Fatalf("no failures yet = %d, %v", n, err)
	}
	for want := 1; want <= 3; want++ {
		if n, err := s.AddFailure(ctx, "totp:alice", time.Hour); err != nil || n != want {
			t.Fatalf("AddFailure = %d, %v; want %d", n, err, want)
		}
	}
	if n, _ := s.Failures(ctx, "totp:bob"); n != 0 {
		t.Errorf("bob's count = %d", n)
	}
	if err := s.ResetFailures(ctx, "totp:alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Failures(ctx, "totp:alice"); err != nil || n != 0 {
		t.Errorf("after reset = %d, %v", n, err)
	}
	if _, err := s.AddFailure(ctx, "short", time.Second); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(sessionExpiryWait, func() bool { n, err := s.Failures(ctx, "short"); return err == nil && n == 0 }) {
		t.Error("failure count never expired")
	}
}

func testSetMetaOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	if v, err := s.SetMetaOnce(ctx, "check", "first"); err != nil || v != "first" {
		t.Fatalf("first = %q, %v", v, err)
	}
	if v, err := s.SetMetaOnce(ctx, "check", "second"); err != nil || v != "first" {
		t.Fatalf("second = %q, %v; want the first value kept", v, err)
	}
}

func testDeleteUserSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, sess := range []store.Session{sampleSession("a1", "alice"), sampleSession("a2", "alice"), sampleSession("b1", "bob")} {
		if err := s.PutSession(ctx, sess, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteUserSessions(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("DeleteUserSessions = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"a1", "a2"} {
		if _, err := s.Session(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session %s survived: %v", id, err)
		}
	}
	if _, err := s.Session(ctx, sid("bob", "b1")); err != nil {
		t.Errorf("bob's session was removed: %v", err)
	}
	if n, err := s.DeleteUserSessions(ctx, "nobody"); err != nil || n != 0 {
		t.Errorf("no sessions: %d, %v", n, err)
	}
}

func testDeleteAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateAccount(t, s, sampleAccount("alice"))
	mustCreateAccount(t, s, sampleAccount("bob"))
	if err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted account: %v", err)
	}
	accts, _ := s.Accounts(ctx)
	if got := names(accts, func(a store.Account) string { return a.Name }); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("accounts = %q", got)
	}
	if err := s.DeleteAccount(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// The name can be used again.
	mustCreateAccount(t, s, sampleAccount("alice"))
}

func testSessionsOfUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	a1, a2, b1 := sampleSession("a1", "alice"), sampleSession("a2", "alice"), sampleSession("b1", "bob")
	a1.CreatedAt = when.Add(time.Hour)
	for _, sess := range []store.Session{a1, a2, b1} {
		if err := s.PutSession(ctx, sess, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Sessions(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ids := names(got, plainID); !slices.Equal(ids, []string{"a2", "a1"}) {
		t.Errorf("alice's sessions = %q, want oldest first", ids)
	}
	if err := s.DeleteSession(ctx, sid("alice", "a2")); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Sessions(ctx, "alice")
	if len(got) != 1 {
		t.Errorf("after delete: %d sessions", len(got))
	}
	if none, err := s.Sessions(ctx, "nobody"); err != nil || len(none) != 0 {
		t.Errorf("nobody's sessions = %v, %v", none, err)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	events := []store.AuditEvent{
		{Time: when, Action: "login", Outcome: "success", Actor: "alice"},
		{Time: when.Add(time.Minute), Action: "helpdesk.reset_password", Outcome: "success", Actor: "hd", Target: "alice", Reason: "T-1"},
		{Time: when.Add(2 * time.Minute), Action: "login", Outcome: "failure", Actor: "bob"},
		{Time: when.Add(3 * time.Minute), Action: "login", Outcome: "success", Actor: "alice"},
	}
	for _, e := range events {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		q    store.AuditQuery
		want []string // actions+actors newest first
	}{
		{"by user as actor or target", store.AuditQuery{User: "alice"}, []string{"login/alice", "helpdesk.reset_password/hd", "login/alice"}},
		{"by actor", store.AuditQuery{Actor: "hd"}, []string{"helpdesk.reset_password/hd"}},
		{"by action", store.AuditQuery{Action: "login"}, []string{"login/alice", "login/bob", "login/alice"}},
		{"by time", store.AuditQuery{Since: when.Add(time.Minute), Until: when.Add(3 * time.Minute)}, []string{"login/bob", "helpdesk.reset_password/hd"}},
		{"limit applies after filtering", store.AuditQuery{Action: "login", Limit: 1}, []string{"login/alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := items(s.Audit(ctx, tc.q))
			if err != nil {
				t.Fatal(err)
			}
			if ids := names(got, func(e store.AuditEvent) string { return e.Action + "/" + e.Actor }); !slices.Equal(ids, tc.want) {
				t.Errorf("got %q, want %q", ids, tc.want)
			}
		})
	}
}

func testApps(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.App(ctx, "wiki"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("App(missing) error = %v, want store.ErrNotFound", err)
	}
	if got, err := s.Apps(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Apps of an empty store = %v, %v; want none", got, err)
	}
	wiki := store.App{Name: "wiki", URL: "https://wiki.example.com/", Roles: []string{"employee"}}
	ops := store.App{Name: "ops", URL: "https://ops.example.com:8443/console/", Roles: []string{"admin", "helpdesk"}}
	for _, a := range []store.App{wiki, ops} {
		if err := s.PutApp(ctx, a); err != nil {
			t.Fatalf("PutApp(%s): %v", a.Name, err)
		}
	}
	got, err := s.App(ctx, "ops")
	if err != nil {
		t.Fatalf("App: %v", err)
	}
	if diff := cmp.Diff(ops, got); diff != "" {
		t.Errorf("App after PutApp (-want +got):\n%s", diff)
	}
	wiki.Roles = []string{"employee", "contractor"}
	if err := s.PutApp(ctx, wiki); err != nil {
		t.Fatalf("PutApp again: %v", err)
	}
	all, err := s.Apps(ctx)
	if err != nil {
		t.Fatalf("Apps: %v", err)
	}
	if diff := cmp.Diff([]store.App{ops, wiki}, all); diff != "" {
		t.Errorf("Apps, sorted by name (-want +got):\n%s", diff)
	}
	if err := s.DeleteApp(ctx, "ops"); err != nil {
		t.Fatalf("DeleteApp: %v", err)
	}
	if err := s.DeleteApp(ctx, "ops"); err != nil {
		t.Fatalf("DeleteApp(missing): %v", err)
	}
	if _, err := s.App(ctx, "ops"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("App after DeleteApp error = %v, want store.ErrNotFound", err)
	}
}

// concurrently runs fn(i) for i in [0, n) on n goroutines at once and
// waits for them.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func testCreateAccountConcurrent(t *testing.T, s store.Store) {
	const creators = 10
	errs := make([]error, creators)
	concurrently(creators, func(i int) {
		a := sampleAccount("alice")
		a.Email = fmt.Sprintf("alice%d@example.com", i)
		errs[i] = s.CreateAccount(context.Background(), a)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("CreateAccount %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("CreateAccount %d: error = %v, want nil or store.ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent CreateAccount succeeded")
	}
	if got, want := mustAccount(t, s, "alice").Email, fmt.Sprintf("alice%d@example.com", winner); got != want {
		t.Errorf("stored account has email %q, want the winner's %q", got, want)
	}
}

func testUpdateAccountKeepsName(t *testing.T, s store.Store) {
	mustCreateAccount(t, s, sampleAccount("alice"))
	err := s.UpdateAccount(t.Context(), "alice", func(a *store.Account) error {
		a.Name = "mallory"
		a.Email = "new@example.com"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateAccount: %v", err)
	}
	if got := mustAccount(t, s, "alice"); got.Name != "alice" || got.Email != "new@example.com" {
		t.Errorf("after fn renamed the account: Name %q, Email %q; want alice, new@example.com", got.Name, got.Email)
	}
	if _, err := s.Account(t.Context(), "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Account(new name) error = %v, want store.ErrNotFound", err)
	}
}

func testDeleteAccountLeavesSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateAccount(t, s, sampleAccount("alice"))
	if err := s.PutSession(ctx, sampleSession("a1", "alice"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, sid("alice", "a1")); err != nil {
		t.Errorf("DeleteAccount touched the account's session: %v (callers end sessions themselves)", err)
	}
}

func testPutSessionRenewsTTL(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutSession(ctx, sampleSession("renewed", "alice"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, sampleSession("renewed", "alice"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// marker is stored after renewed's first ttl started, with the same
	// ttl: once it has gone, renewed would have gone too without the
	// renewal.
	if err := s.PutSession(ctx, sampleSession("marker", "bob"), time.Second); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(sessionExpiryWait, func() bool {
		_, err := s.Session(ctx, sid("bob", "marker"))
		return errors.Is(err, store.ErrNotFound)
	}) {
		t.Fatal("session stored with a ttl of 1s never expired")
	}
	if _, err := s.Session(ctx, sid("alice", "renewed")); err != nil {
		t.Errorf("session put again with a ttl of 1h: %v", err)
	}
}

func testSessionsExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutSession(ctx, sampleSession("short", "alice"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, sampleSession("long", "alice"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(sessionExpiryWait, func() bool {
		_, err := s.Session(ctx, sid("alice", "short"))
		return errors.Is(err, store.ErrNotFound)
	}) {
		t.Fatal("session stored with a ttl of 1s never expired")
	}
	got, err := s.Sessions(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ids := names(got, plainID); !slices.Equal(ids, []string{"long"}) {
		t.Errorf("Sessions after one expired = %q, want only the live one", ids)
	}
	if n, err := s.DeleteUserSessions(ctx, "alice"); err != nil || n != 1 {
		t.Errorf("DeleteUserSessions after one expired = %d, %v; want 1 (the live one)", n, err)
	}
}

func testUseTOTPStepConcurrent(t *testing.T, s store.Store) {
	const tries = 20
	firsts := make([]bool, tries)
	errs := make([]error, tries)
	concurrently(tries, func(i int) {
		firsts[i], errs[i] = s.UseTOTPStep(context.Background(), "alice", 4242, time.Minute)
	})
	n := 0
	for i := range tries {
		if errs[i] != nil {
			t.Errorf("UseTOTPStep: %v", errs[i])
		}
		if firsts[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of %d concurrent uses of one step were first uses, want exactly 1", n, tries)
	}
}

func testFailuresConcurrent(t *testing.T, s store.Store) {
	const goroutines, each = 20, 5
	counts := make([][]int, goroutines)
	concurrently(goroutines, func(i int) {
		for range each {
			n, err := s.AddFailure(context.Background(), "password:alice", time.Hour)
			if err != nil {
				t.Errorf("AddFailure: %v", err)
				return
			}
			counts[i] = append(counts[i], n)
		}
	})
	all := slices.Concat(counts...)
	slices.Sort(all)
	var want []int
	for n := 1; n <= goroutines*each; n++ {
		want = append(want, n)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("counts returned by %d concurrent AddFailure calls, sorted (-want +got):\n%s", goroutines*each, diff)
	}
	if n, err := s.Failures(t.Context(), "password:alice"); err != nil || n != goroutines*each {
		t.Errorf("Failures = %d, %v; want %d", n, err, goroutines*each)
	}
}

func testFailuresRenewTTL(t *testing.T, s store.Store) {
	ctx := t.Context()
	add := func(key string, ttl time.Duration, want int) {
		t.Helper()
		if n, err := s.AddFailure(ctx, key, ttl); err != nil || n != want {
			t.Fatalf("AddFailure(%q, %v) = %d, %v; want %d", key, ttl, n, err, want)
		}
	}
	// "extended" starts with a ttl of 1s that the second failure extends
	// to an hour; "shortened" the other way round.
	add("extended", time.Second, 1)
	add("extended", time.Hour, 2)
	add("shortened", time.Hour, 1)
	add("shortened", time.Second, 2)
	if !pollUntil(sessionExpiryWait, func() bool { n, err := s.Failures(ctx, "shortened"); return err == nil && n == 0 }) {
		t.Fatal("a count whose last failure had a ttl of 1s never expired")
	}
	// More than a second has passed since extended's first failure.
	if n, err := s.Failures(ctx, "extended"); err != nil || n != 2 {
		t.Errorf("count renewed for an hour = %d, %v; want 2", n, err)
	}
	add("shortened", time.Hour, 1) // an expired count starts again
}

func testSetMetaOnceConcurrent(t *testing.T, s store.Store) {
	const callers = 10
	got := make([]string, callers)
	concurrently(callers, func(i int) {
		v, err := s.SetMetaOnce(context.Background(), "check", fmt.Sprintf("value-%d", i))
		if err != nil {
			t.Errorf("SetMetaOnce: %v", err)
		}
		got[i] = v
	})
	kept := got[0]
	if !strings.HasPrefix(kept, "value-") {
		t.Fatalf("SetMetaOnce returned %q, none of the values given", kept)
	}
	for i, v := range got {
		if v != kept {
			t.Errorf("caller %d was told %q, caller 0 %q: want one value for all", i, v, kept)
		}
	}
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	const goroutines, each = 20, 5
	concurrently(goroutines, func(i int) {
		for j := range each {
			e := store.AuditEvent{ID: "forged", Time: when, Action: "login", Outcome: "success", Actor: fmt.Sprintf("u%02d-%d", i, j)}
			if err := s.AppendAudit(context.Background(), e); err != nil {
				t.Errorf("AppendAudit: %v", err)
			}
		}
	})
	// Page through with a small limit: every event exactly once.
	seenID := map[string]bool{}
	seenActor := map[string]bool{}
	before := ""
	for range goroutines * each {
		page, err := s.Audit(t.Context(), store.AuditQuery{Before: before, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		got := page.Items
		for _, e := range got {
			if e.ID == "" || e.ID == "forged" || seenID[e.ID] {
				t.Errorf("event ID %q: want a fresh ID assigned by the store", e.ID)
			}
			if seenActor[e.Actor] {
				t.Errorf("event of %s returned twice while paging", e.Actor)
			}
			seenID[e.ID], seenActor[e.Actor] = true, true
		}
		if before = page.Next; before == "" {
			break
		}
	}
	if len(seenActor) != goroutines*each {
		t.Errorf("paging returned %d distinct events, want %d", len(seenActor), goroutines*each)
	}
}

func testAuditBeforeWithFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 6 {
		action := []string{"login", "logout"}[i%2]
		e := store.AuditEvent{Time: when.Add(time.Duration(i) * time.Second), Action: action, Outcome: "success", Actor: fmt.Sprintf("user%d", i)}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	actors := func(ev []store.AuditEvent) []string {
		return names(ev, func(e store.AuditEvent) string { return e.Actor })
	}
	page1, err := items(s.Audit(ctx, store.AuditQuery{Action: "login", Limit: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if got := actors(page1); !slices.Equal(got, []string{"user4", "user2"}) {
		t.Fatalf("page 1 of logins = %q", got)
	}
	page2, err := items(s.Audit(ctx, store.AuditQuery{Action: "login", Limit: 2, Before: page1[1].ID}))
	if err != nil {
		t.Fatal(err)
	}
	if got := actors(page2); !slices.Equal(got, []string{"user0"}) {
		t.Errorf("page 2 of logins = %q, want [user0]", got)
	}
	older, err := items(s.Audit(ctx, store.AuditQuery{Before: page1[1].ID}))
	if err != nil {
		t.Fatal(err)
	}
	if got := actors(older); !slices.Equal(got, []string{"user1", "user0"}) {
		t.Errorf("every event before user2's = %q, want [user1 user0]", got)
	}
}

func testAuditLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	const events = 1001
	for i := range events {
		e := store.AuditEvent{Time: when, Action: "login", Outcome: "success", Actor: fmt.Sprintf("user%04d", i)}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, -1, 1001, 5000} {
		got, err := items(s.Audit(ctx, store.AuditQuery{Limit: limit}))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1000 || got[0].Actor != "user1000" || got[999].Actor != "user0001" {
			t.Errorf("Audit with Limit %d: %d events, want the newest 1000", limit, len(got))
		}
	}
	if got, err := items(s.Audit(ctx, store.AuditQuery{Limit: 1000})); err != nil || len(got) != 1000 {
		t.Errorf("Audit with Limit 1000: %d events, %v", len(got), err)
	}
}

func testRaiseCounter(t *testing.T, s store.Store) {
	ctx := t.Context()
	// 2^159: CRL numbers may be up to 20 octets, beyond any int64.
	huge := new(big.Int).Lsh(big.NewInt(1), 159)
	for _, step := range []struct {
		name        string
		counter     string
		value, want *big.Int
	}{
		{"a new counter takes the value", "crl:a", big.NewInt(5), big.NewInt(5)},
		{"a lower value leaves it", "crl:a", big.NewInt(3), big.NewInt(5)},
		{"an equal value leaves it", "crl:a", big.NewInt(5), big.NewInt(5)},
		{"a higher value raises it", "crl:a", big.NewInt(7), big.NewInt(7)},
		{"counters are independent", "crl:b", big.NewInt(1), big.NewInt(1)},
		{"a 20-octet value raises it", "crl:a", huge, huge},
		{"below a 20-octet value leaves it", "crl:a", new(big.Int).Sub(huge, big.NewInt(1)), huge},
	} {
		got, err := s.RaiseCounter(ctx, step.counter, step.value)
		if err != nil || got.Cmp(step.want) != 0 {
			t.Fatalf("%s: RaiseCounter(%s, %v) = %v, %v; want %v", step.name, step.counter, step.value, got, err, step.want)
		}
	}
	if _, err := s.RaiseCounter(ctx, "crl:a", nil); err == nil {
		t.Error("RaiseCounter with no value: no error")
	}
	// A counter and a SetMetaOnce value of the same name are apart.
	if v, err := s.SetMetaOnce(ctx, "crl:a", "text"); err != nil || v != "text" {
		t.Errorf("SetMetaOnce beside a counter of the same name = %q, %v; want %q", v, err, "text")
	}
	if got, err := s.RaiseCounter(ctx, "crl:a", big.NewInt(1)); err != nil || got.Cmp(huge) != 0 {
		t.Errorf("counter after SetMetaOnce of the same name = %v, %v; want %v", got, err, huge)
	}
}

func testRaiseCounterConcurrent(t *testing.T, s store.Store) {
	const callers = 10
	concurrently(callers, func(i int) {
		v := big.NewInt(int64(i + 1))
		got, err := s.RaiseCounter(context.Background(), "crl:x", v)
		if err != nil {
			t.Errorf("RaiseCounter(%v): %v", v, err)
			return
		}
		if got.Cmp(v) < 0 {
			t.Errorf("RaiseCounter(%v) = %v, lower than the value given", v, got)
		}
	})
	if got, err := s.RaiseCounter(t.Context(), "crl:x", big.NewInt(0)); err != nil || got.Cmp(big.NewInt(callers)) != 0 {
		t.Errorf("after concurrent raises the counter is %v, %v; want %d, the highest", got, err, callers)
	}
}

// withEmail is sampleAccount(name) with another email.
func withEmail(name, email string) store.Account {
	a := sampleAccount(name)
	a.Email = email
	return a
}

// setEmail changes the email of the named account.
func setEmail(s store.Store, name, email string) error {
	return s.UpdateAccount(context.Background(), name, func(a *store.Account) error {
		a.Email = email
		return nil
	})
}

func wantNoAccount(t *testing.T, s store.Store, name string) {
	t.Helper()
	if _, err := s.Account(t.Context(), name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Account(%q) error = %v, want store.ErrNotFound: the refused create wrote it", name, err)
	}
}

func testCreateAccountEmailTaken(t *testing.T, s store.Store) {
	mustCreateAccount(t, s, withEmail("admin", "admin@example.com"))
	for _, email := range []string{"admin@example.com", "ADMIN@example.com", "Admin@Example.COM"} {
		err := s.CreateAccount(t.Context(), withEmail("dupe", email))
		if !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("CreateAccount(dupe, %q) error = %v, want store.ErrEmailTaken", email, err)
		}
		if errors.Is(err, store.ErrExists) {
			t.Errorf("CreateAccount(dupe, %q) error = %v also matches store.ErrExists, which callers read as the name being taken", email, err)
		}
	}
	wantNoAccount(t, s, "dupe")
	// A taken name is ErrExists, whatever the email.
	if err := s.CreateAccount(t.Context(), withEmail("admin", "ADMIN@example.com")); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateAccount(admin again) error = %v, want store.ErrExists", err)
	}
	mustCreateAccount(t, s, withEmail("dupe", "dupe@example.com"))
}

func testCreateAccountNoEmail(t *testing.T, s store.Store) {
	for _, name := range []string{"alice", "bob", "carol"} {
		mustCreateAccount(t, s, withEmail(name, ""))
	}
	if err := setEmail(s, "bob", ""); err != nil {
		t.Errorf("UpdateAccount(bob) keeping no email: %v", err)
	}
}

// Emails compare ignoring ASCII case only, as certificate emails match
// accounts: under Unicode folding the Kelvin sign would equal "k".
func testCreateAccountUnicodeEmail(t *testing.T, s store.Store) {
	mustCreateAccount(t, s, withEmail("kate", "kate@example.com"))
	mustCreateAccount(t, s, withEmail("kelvin", "\u212aate@example.com"))
	mustCreateAccount(t, s, withEmail("anne", "\u00e4nne@example.com"))
	mustCreateAccount(t, s, withEmail("anne2", "\u00c4nne@example.com"))
	err := s.CreateAccount(t.Context(), withEmail("anne3", "\u00e4NNE@EXAMPLE.com"))
	if !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateAccount with anne's email in other ASCII case: error = %v, want store.ErrEmailTaken", err)
	}
}

func testUpdateAccountEmailTaken(t *testing.T, s store.Store) {
	mustCreateAccount(t, s, withEmail("admin", "admin@example.com"))
	before := withEmail("dupe", "dupe@example.com")
	mustCreateAccount(t, s, before)
	for _, email := range []string{"admin@example.com", "ADMIN@EXAMPLE.COM"} {
		err := setEmail(s, "dupe", email)
		if !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("UpdateAccount(dupe) to %q: error = %v, want store.ErrEmailTaken", email, err)
		}
	}
	if diff := cmp.Diff(before, mustAccount(t, s, "dupe")); diff != "" {
		t.Errorf("the refused UpdateAccount changed the account (-want +got):\n%s", diff)
	}
	// One's own email in another case, and changes that leave the email
	// alone, are fine.
	if err := setEmail(s, "admin", "Admin@Example.com"); err != nil {
		t.Errorf("UpdateAccount(admin) to its own email in other case: %v", err)
	}
	err := s.UpdateAccount(t.Context(), "dupe", func(a *store.Account) error {
		a.Roles = []string{"employee"}
		return nil
	})
	if err != nil {
		t.Errorf("UpdateAccount(dupe) roles only: %v", err)
	}
	if err := s.CreateAccount(t.Context(), withEmail("third", "admin@EXAMPLE.com")); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateAccount with admin's email after admin changed its case: error = %v, want store.ErrEmailTaken", err)
	}
}

func testEmailFreed(t *testing.T, s store.Store) {
	mustCreateAccount(t, s, withEmail("alice", "alice@example.com"))
	mustCreateAccount(t, s, withEmail("bob", "bob@example.com"))
	if err := setEmail(s, "alice", "alice.new@example.com"); err != nil {
		t.Fatalf("UpdateAccount(alice) to a new email: %v", err)
	}
	if err := setEmail(s, "bob", "ALICE@example.com"); err != nil {
		t.Errorf("UpdateAccount(bob) to alice's old email: %v", err)
	}
	if err := s.DeleteAccount(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	mustCreateAccount(t, s, withEmail("carol", "alice.new@example.com"))
	if err := s.CreateAccount(t.Context(), withEmail("dave", "alice@example.com")); !errors.Is(err, store.ErrEmailTaken) {
		t.Errorf("CreateAccount with the email bob took: error = %v, want store.ErrEmailTaken", err)
	}
}

// wantOneWinner checks that exactly one of errs is nil and that the others
// are store.ErrEmailTaken, and returns the winner.
func wantOneWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("%s %d and %d both succeeded", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrEmailTaken):
			t.Errorf("%s %d: error = %v, want nil or store.ErrEmailTaken", what, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no concurrent %s succeeded", what)
	}
	return winner
}

func testCreateAccountEmailConcurrent(t *testing.T, s store.Store) {
	const creators = 10
	errs := make([]error, creators)
	concurrently(creators, func(i int) {
		email := "shared@example.com"
		if i%2 == 1 {
			email = "SHARED@example.com"
		}
		errs[i] = s.CreateAccount(context.Background(), withEmail(fmt.Sprintf("user%d", i), email))
	})
	winner := wantOneWinner(t, "CreateAccount", errs)
	accts, err := s.Accounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(accts, func(a store.Account) string { return a.Name }), []string{fmt.Sprintf("user%d", winner)}; !cmp.Equal(got, want) {
		t.Errorf("accounts after the race = %q, want only the winner %q", got, want)
	}
}

func testUpdateAccountEmailConcurrent(t *testing.T, s store.Store) {
	const updaters = 10
	for i := range updaters {
		mustCreateAccount(t, s, withEmail(fmt.Sprintf("user%d", i), fmt.Sprintf("user%d@example.com", i)))
	}
	errs := make([]error, updaters+1)
	concurrently(updaters+1, func(i int) {
		if i == updaters { // a create joins the race
			errs[i] = s.CreateAccount(context.Background(), withEmail("newcomer", "Shared@Example.com"))
			return
		}
		errs[i] = setEmail(s, fmt.Sprintf("user%d", i), "shared@example.com")
	})
	winner := wantOneWinner(t, "UpdateAccount or CreateAccount", errs)
	accts, err := s.Accounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var holders []string
	for _, a := range accts {
		if strings.EqualFold(a.Email, "shared@example.com") {
			holders = append(holders, a.Name)
		}
	}
	want := "newcomer"
	if winner < updaters {
		want = fmt.Sprintf("user%d", winner)
	}
	if !cmp.Equal(holders, []string{want}) {
		t.Errorf("accounts with the shared email = %q, want only the winner %q", holders, want)
	}
}

// testMarker checks Mark and CheckMarker: a new store has no marker,
// even once it holds an account; after Mark it has one everywhere.
func testMarker(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, account := range []string{"", "alice"} {
		if err := s.CheckMarker(ctx, account); !errors.Is(err, store.ErrDataLost) {
			t.Errorf("CheckMarker(%q) of a new store = %v, want store.ErrDataLost", account, err)
		}
	}
	mustCreateAccount(t, s, sampleAccount("alice"))
	if err := s.CheckMarker(ctx, ""); !errors.Is(err, store.ErrDataLost) {
		t.Errorf("CheckMarker of a store with an account but never marked = %v, want store.ErrDataLost", err)
	}
	for range 2 {
		if err := s.Mark(ctx); err != nil {
			t.Fatalf("Mark: %v", err)
		}
	}
	for _, account := range []string{"", "alice", "bob"} {
		if err := s.CheckMarker(ctx, account); err != nil {
			t.Errorf("CheckMarker(%q) after Mark = %v, want nil", account, err)
		}
	}
}

func testOIDCClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.OIDCClient(ctx, "grafana"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("OIDCClient(missing) error = %v, want store.ErrNotFound", err)
	}
	if got, err := s.OIDCClients(ctx); err != nil || len(got) != 0 {
		t.Fatalf("OIDCClients of an empty store = %v, %v; want none", got, err)
	}
	grafana := store.OIDCClient{ID: "grafana", SecretHash: "sha256:" + fmt.Sprintf("%064x", 1),
		RedirectURIs: []string{"https://grafana.example.com/login/generic_oauth"}, Roles: []string{"employee"},
		CreatedAt: when, UpdatedAt: when}
	cli := store.OIDCClient{ID: "cli", RedirectURIs: []string{"http://127.0.0.1:8000/cb"}, Roles: []string{"admin"}, Public: true,
		CreatedAt: when, UpdatedAt: when}
	for _, c := range []store.OIDCClient{grafana, cli} {
		if err := s.PutOIDCClient(ctx, c); err != nil {
			t.Fatalf("PutOIDCClient(%s): %v", c.ID, err)
		}
	}
	got, err := s.OIDCClient(ctx, "grafana")
	if err != nil {
		t.Fatalf("OIDCClient: %v", err)
	}
	if diff := cmp.Diff(grafana, got); diff != "" {
		t.Errorf("OIDCClient after PutOIDCClient (-want +got):\n%s", diff)
	}
	grafana.Roles = []string{"employee", "admin"}
	if err := s.PutOIDCClient(ctx, grafana); err != nil {
		t.Fatalf("PutOIDCClient again: %v", err)
	}
	all, err := s.OIDCClients(ctx)
	if err != nil {
		t.Fatalf("OIDCClients: %v", err)
	}
	if diff := cmp.Diff([]store.OIDCClient{cli, grafana}, all); diff != "" {
		t.Errorf("OIDCClients, sorted by ID (-want +got):\n%s", diff)
	}
	for range 2 {
		if err := s.DeleteOIDCClient(ctx, "cli"); err != nil {
			t.Fatalf("DeleteOIDCClient: %v", err)
		}
	}
	if _, err := s.OIDCClient(ctx, "cli"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OIDCClient after DeleteOIDCClient error = %v, want store.ErrNotFound", err)
	}
}

func testOIDCKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.OIDCKeys(ctx); err != nil || len(got) != 0 {
		t.Fatalf("OIDCKeys of an empty store = %v, %v; want none", got, err)
	}
	older := store.OIDCKey{ID: "20260503-a", Algorithm: "RS256", PrivateKey: "v1:sealed-a", CreatedAt: when}
	newer := store.OIDCKey{ID: "20260504-b", Algorithm: "RS256", PrivateKey: "v1:sealed-b", CreatedAt: when.Add(24 * time.Hour)}
	for _, k := range []store.OIDCKey{newer, older} {
		if err := s.PutOIDCKey(ctx, k); err != nil {
			t.Fatalf("PutOIDCKey(%s): %v", k.ID, err)
		}
	}
	older.RetiredAt = when.Add(24 * time.Hour)
	if err := s.PutOIDCKey(ctx, older); err != nil {
		t.Fatalf("PutOIDCKey again: %v", err)
	}
	got, err := s.OIDCKeys(ctx)
	if err != nil {
		t.Fatalf("OIDCKeys: %v", err)
	}
	if diff := cmp.Diff([]store.OIDCKey{older, newer}, got); diff != "" {
		t.Errorf("OIDCKeys, sorted by ID (-want +got):\n%s", diff)
	}
	for range 2 {
		if err := s.DeleteOIDCKey(ctx, older.ID); err != nil {
			t.Fatalf("DeleteOIDCKey: %v", err)
		}
	}
	got, err = s.OIDCKeys(ctx)
	if err != nil {
		t.Fatalf("OIDCKeys: %v", err)
	}
	if diff := cmp.Diff([]store.OIDCKey{newer}, got); diff != "" {
		t.Errorf("OIDCKeys after DeleteOIDCKey (-want +got):\n%s", diff)
	}
}

func testTickets(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Ticket(ctx, "code:x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Ticket(missing) error = %v, want store.ErrNotFound", err)
	}
	if err := s.PutTicket(ctx, "code:x", []byte("one"), 0); err == nil {
		t.Errorf("PutTicket with ttl 0 succeeded, want an error")
	}
	if err := s.PutTicket(ctx, "code:x", []byte("one"), time.Minute); err != nil {
		t.Fatalf("PutTicket: %v", err)
	}
	if err := s.PutTicket(ctx, "code:x", []byte("two"), time.Minute); err != nil {
		t.Fatalf("PutTicket again: %v", err)
	}
	if got, err := s.Ticket(ctx, "code:x"); err != nil || string(got) != "two" {
		t.Errorf("Ticket = %q, %v; want \"two\"", got, err)
	}
	for range 2 {
		if err := s.DeleteTicket(ctx, "code:x"); err != nil {
			t.Fatalf("DeleteTicket: %v", err)
		}
	}
	if _, err := s.Ticket(ctx, "code:x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ticket after DeleteTicket error = %v, want store.ErrNotFound", err)
	}
	if err := s.PutTicket(ctx, "code:short", []byte("soon gone"), time.Second); err != nil {
		t.Fatalf("PutTicket: %v", err)
	}
	gone := pollUntil(sessionExpiryWait, func() bool {
		_, err := s.Ticket(ctx, "code:short")
		return errors.Is(err, store.ErrNotFound)
	})
	if !gone {
		t.Fatalf("a ticket with a one-second ttl was still there after %v", sessionExpiryWait)
	}
	if _, err := s.TakeTicket(ctx, "code:short"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeTicket(expired) error = %v, want store.ErrNotFound", err)
	}
}

func testTakeTicket(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutTicket(ctx, "code:y", []byte("grant"), time.Minute); err != nil {
		t.Fatalf("PutTicket: %v", err)
	}
	if got, err := s.TakeTicket(ctx, "code:y"); err != nil || string(got) != "grant" {
		t.Fatalf("TakeTicket = %q, %v; want \"grant\"", got, err)
	}
	if _, err := s.TakeTicket(ctx, "code:y"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second TakeTicket error = %v, want store.ErrNotFound", err)
	}
	if _, err := s.Ticket(ctx, "code:y"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ticket after TakeTicket error = %v, want store.ErrNotFound", err)
	}
}

func testTakeTicketConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutTicket(ctx, "code:z", []byte("grant"), time.Minute); err != nil {
		t.Fatalf("PutTicket: %v", err)
	}
	const n = 8
	errs := make([]error, n)
	concurrently(n, func(i int) { _, errs[i] = s.TakeTicket(ctx, "code:z") })
	took := 0
	for _, err := range errs {
		switch {
		case err == nil:
			took++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("TakeTicket error = %v, want nil or store.ErrNotFound", err)
		}
	}
	if took != 1 {
		t.Errorf("%d of %d concurrent TakeTicket calls got the ticket, want exactly 1", took, n)
	}
}

// items is the items of a page, or err.
func items[T any](page store.Page[T], err error) ([]T, error) {
	return page.Items, err
}

// pageAll lists every page of list with limit, checking that each page
// holds at most limit items and that a page without Next is the last, and
// returns the items in order.
func pageAll[T any](t *testing.T, what string, limit int, list func(cursor string) (store.Page[T], error)) []T {
	t.Helper()
	var all []T
	cursor := ""
	for range 1000 {
		page, err := list(cursor)
		if err != nil {
			t.Fatalf("%s, cursor %q: %v", what, cursor, err)
		}
		if len(page.Items) > limit {
			t.Fatalf("%s: a page of %d items, want at most %d", what, len(page.Items), limit)
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		if page.Next == cursor {
			t.Fatalf("%s: Next %q does not move on", what, cursor)
		}
		cursor = page.Next
	}
	t.Fatalf("%s: no end after 1000 pages", what)
	return nil
}

func testListAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []string
	for i := range 23 {
		name := fmt.Sprintf("user%02d", (i*7)%23) // created out of order
		mustCreateAccount(t, s, store.Account{Name: name, Roles: []string{"employee"}})
		want = append(want, name)
	}
	slices.Sort(want)
	for _, limit := range []int{1, 5, 23, 100} {
		got := pageAll(t, fmt.Sprintf("ListAccounts by %d", limit), limit, func(c string) (store.Page[store.Account], error) {
			return s.ListAccounts(ctx, store.ListQuery{Cursor: c, Limit: limit})
		})
		if diff := cmp.Diff(want, names(got, func(a store.Account) string { return a.Name })); diff != "" {
			t.Errorf("ListAccounts by %d (-want +got):\n%s", limit, diff)
		}
	}
	// A page ends exactly at the last account: no Next.
	if page, err := s.ListAccounts(ctx, store.ListQuery{Limit: 23}); err != nil || len(page.Items) != 23 || page.Next != "" {
		t.Errorf("ListAccounts of all 23 by 23 = %d items, Next %q, %v; want 23 and no Next", len(page.Items), page.Next, err)
	}
	for _, limit := range []int{0, -1, store.MaxPage + 1} {
		if page, err := s.ListAccounts(ctx, store.ListQuery{Limit: limit}); err != nil || len(page.Items) != 23 {
			t.Errorf("ListAccounts with Limit %d = %d items, %v; want all 23 (MaxPage)", limit, len(page.Items), err)
		}
	}
	// Accounts deleted or added between two pages do not upset paging.
	page, err := s.ListAccounts(ctx, store.ListQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "user04"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "user05"); err != nil {
		t.Fatal(err)
	}
	mustCreateAccount(t, s, store.Account{Name: "user04a"})
	next, err := s.ListAccounts(ctx, store.ListQuery{Cursor: page.Next, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(next.Items, func(a store.Account) string { return a.Name }); !slices.Equal(got, []string{"user04a", "user06", "user07"}) {
		t.Errorf("the page after user00…user04, once user04 and user05 were deleted and user04a added = %q", got)
	}
	if empty, err := s.ListAccounts(ctx, store.ListQuery{Cursor: store.Cursor(store.AccountCursor, store.AccountPosition{Name: "zzz"})}); err != nil || len(empty.Items) != 0 || empty.Next != "" {
		t.Errorf("ListAccounts after the last name = %+v, %v; want an empty last page", empty, err)
	}
}

// listSessionsFixture writes accounts alice, bob (no sessions) and carol,
// sessions of alice (two at one time, told apart by ID), carol, ghost
// (no account), an expired one of alice, and returns the live sessions
// of existing accounts in list order.
func listSessionsFixture(t *testing.T, s store.Store) []string {
	ctx := t.Context()
	for _, n := range []string{"alice", "bob", "carol"} {
		mustCreateAccount(t, s, store.Account{Name: n, Roles: []string{"employee"}})
	}
	put := func(id, user string, created time.Time, ttl time.Duration) {
		t.Helper()
		sess := sampleSession(id, user)
		sess.CreatedAt = created
		if err := s.PutSession(ctx, sess, ttl); err != nil {
			t.Fatalf("PutSession(%s): %v", id, err)
		}
	}
	put("a-late", "alice", when.Add(time.Hour), time.Hour)
	put("a-2", "alice", when, time.Hour)
	put("a-1", "alice", when, time.Hour)
	put("a-early", "alice", when.Add(-time.Hour), time.Hour)
	put("a-gone", "alice", when.Add(-2*time.Hour), time.Second)
	put("c-1", "carol", when, time.Hour)
	put("c-0", "carol", when.Add(-time.Minute), time.Hour)
	put("g-1", "ghost", when, time.Hour)
	if !pollUntil(sessionExpiryWait, func() bool {
		_, err := s.Session(ctx, sid("alice", "a-gone"))
		return errors.Is(err, store.ErrNotFound)
	}) {
		t.Fatal("session stored with a ttl of 1s never expired")
	}
	// Written again with another creation time: listed once, as it is.
	put("c-1", "carol", when.Add(time.Minute), time.Hour)
	return []string{"a-early", "a-1", "a-2", "a-late", "c-0", "c-1"}
}

func testListSessions(t *testing.T, s store.Store) {
	want := listSessionsFixture(t, s)
	for _, limit := range []int{1, 2, 4, 6, 1000} {
		got := pageAll(t, fmt.Sprintf("ListSessions by %d", limit), limit, func(c string) (store.Page[store.Session], error) {
			return s.ListSessions(t.Context(), store.ListQuery{Cursor: c, Limit: limit})
		})
		if diff := cmp.Diff(want, names(got, plainID), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListSessions by %d (-want +got):\n%s", limit, diff)
		}
	}
}

func testListSessionsOfUser(t *testing.T, s store.Store) {
	listSessionsFixture(t, s)
	for user, want := range map[string][]string{
		"alice":  {"a-early", "a-1", "a-2", "a-late"},
		"ghost":  {"g-1"},
		"bob":    nil,
		"nobody": nil,
	} {
		for _, limit := range []int{1, 3} {
			got := pageAll(t, fmt.Sprintf("ListSessions of %s by %d", user, limit), limit, func(c string) (store.Page[store.Session], error) {
				return s.ListSessions(t.Context(), store.ListQuery{User: user, Cursor: c, Limit: limit})
			})
			if diff := cmp.Diff(want, names(got, plainID), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListSessions of %s by %d (-want +got):\n%s", user, limit, diff)
			}
		}
	}
	// A cursor of alice's list does not continue carol's.
	page, err := s.ListSessions(t.Context(), store.ListQuery{User: "alice", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListSessions(t.Context(), store.ListQuery{User: "carol", Cursor: page.Next}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("carol's sessions after a cursor of alice's: %v, want store.ErrBadCursor", err)
	}
}

func testListCertificates(t *testing.T, s store.Store) {
	ctx := t.Context()
	put := func(serial, user string, issued time.Time) {
		t.Helper()
		c := store.Certificate{Serial: serial, Fingerprint: "sha256:" + serial, User: user, Subject: "CN=" + user, IssuedAt: issued, NotAfter: issued.Add(time.Hour)}
		if err := s.PutCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	put("0c", "alice", when.Add(2*time.Hour))
	put("0b", "bob", when)
	put("0a", "alice", when)
	put("10", "alice", when.Add(-time.Hour))
	put("0d", "bob", when.Add(3*time.Hour))
	put("0d", "bob", when.Add(time.Hour)) // written again: listed once, as it is now
	for user, want := range map[string][]string{
		"":      {"10", "0a", "0b", "0d", "0c"},
		"alice": {"10", "0a", "0c"},
		"bob":   {"0b", "0d"},
		"carol": nil,
	} {
		for _, limit := range []int{1, 2, 10} {
			got := pageAll(t, fmt.Sprintf("ListCertificates of %q by %d", user, limit), limit, func(c string) (store.Page[store.Certificate], error) {
				return s.ListCertificates(ctx, store.ListQuery{User: user, Cursor: c, Limit: limit})
			})
			if diff := cmp.Diff(want, names(got, func(c store.Certificate) string { return c.Serial }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListCertificates of %q by %d (-want +got):\n%s", user, limit, diff)
			}
		}
	}
	all, err := s.Certificates(ctx, "bob")
	if err != nil || len(all) != 2 || !all[1].IssuedAt.Equal(when.Add(time.Hour)) {
		t.Errorf("Certificates(bob) after 0d was written again = %+v, %v", all, err)
	}
}

func testListBadCursors(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, c := range []string{"nonsense", "a.!!!", "s.e30", store.Cursor(store.CertificateCursor, store.CertificatePosition{Serial: "1"})} {
		if _, err := s.ListAccounts(ctx, store.ListQuery{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("ListAccounts with cursor %q: %v, want store.ErrBadCursor", c, err)
		}
	}
	for _, c := range []string{"nonsense", store.Cursor(store.AccountCursor, store.AccountPosition{Name: "x"})} {
		if _, err := s.ListSessions(ctx, store.ListQuery{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("ListSessions with cursor %q: %v, want store.ErrBadCursor", c, err)
		}
		if _, err := s.ListCertificates(ctx, store.ListQuery{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("ListCertificates with cursor %q: %v, want store.ErrBadCursor", c, err)
		}
	}
}

// testAuditNext pages through the trail with Next, with and without
// filters: every matching event once, newest first.
func testAuditNext(t *testing.T, s store.Store) {
	ctx := t.Context()
	var logins, all []string
	for i := range 30 {
		action := []string{"login", "logout", "admin.user.update"}[i%3]
		e := store.AuditEvent{Time: when.Add(time.Duration(i) * time.Second), Action: action, Outcome: "success", Actor: fmt.Sprintf("user%02d", i)}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		all = append([]string{e.Actor}, all...)
		if action == "login" {
			logins = append([]string{e.Actor}, logins...)
		}
	}
	for _, tc := range []struct {
		q    store.AuditQuery
		want []string
	}{{store.AuditQuery{Limit: 4}, all}, {store.AuditQuery{Action: "login", Limit: 3}, logins}} {
		got := pageAll(t, fmt.Sprintf("Audit %+v", tc.q), tc.q.Limit, func(c string) (store.Page[store.AuditEvent], error) {
			q := tc.q
			q.Before = c
			return s.Audit(ctx, q)
		})
		if diff := cmp.Diff(tc.want, names(got, func(e store.AuditEvent) string { return e.Actor })); diff != "" {
			t.Errorf("Audit %+v paged with Next (-want +got):\n%s", tc.q, diff)
		}
	}
}

func testFailuresOf(t *testing.T, s store.Store) {
	ctx := t.Context()
	for range 3 {
		if _, err := s.AddFailure(ctx, "password:alice", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddFailure(ctx, "totp:bob", time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.FailuresOf(ctx, []string{"totp:bob", "none", "password:alice"})
	if err != nil || !slices.Equal(got, []int{1, 0, 3}) {
		t.Errorf("FailuresOf = %v, %v; want [1 0 3]", got, err)
	}
	if got, err := s.FailuresOf(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("FailuresOf(nil) = %v, %v", got, err)
	}
}
