package store

import "context"

// AccountKeys is what binds a certificate to an account (see
// auth.CertBoundTo): the account's name, email and pins.
type AccountKeys struct {
	Name, Email                    string
	PinnedFingerprints, PinnedKeys []string
}

// AccountKeysOf reads every account's keys from st, sorted by name.
// The store cache (store/cached) keeps them in memory instead.
func AccountKeysOf(ctx context.Context, st Store) ([]AccountKeys, error) {
	accts, err := st.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]AccountKeys, len(accts))
	for i, a := range accts {
		keys[i] = AccountKeys{Name: a.Name, Email: a.Email, PinnedFingerprints: a.PinnedFingerprints, PinnedKeys: a.PinnedKeys}
	}
	return keys, nil
}
