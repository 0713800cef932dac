package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

// Emails on a Cluster. On one server, an account record, its entry in the
// email index (one hash) and the index's other entries are written in one
// transaction. A Cluster runs a transaction within one slot only, and
// accounts are spread over slots by name, so there emails are made
// unique by claims instead:
//
//   - an email's claim ({e:HASH}:email:EMAIL) holds the name of the
//     account that has it, and its lease ({e:HASH}:email-lease:EMAIL,
//     same slot) says that the claim is being changed: it is set with the
//     claim and expires after emailLeaseTTL;
//   - to give an account an email, the store takes the claim (under
//     WATCH of the claim and the lease), then writes the account, then
//     drops its lease;
//   - a claim held by another account is taken over only when it has no
//     lease and that account no longer has the email (it changed it, was
//     deleted, or never got it: a write that failed half-way): the claim
//     is a hint that the account record confirms, so no crash can leave
//     an email held for ever, or two accounts with one email.
//
// Two writers racing for one email both WATCH its claim and lease; the
// first EXEC wins and the other sees the lease and is refused. An
// account that changes its email away while another takes the old one
// over changes its record under WATCH of its own key, so it cannot take
// the email back without going through the claim again.

// emailLeaseTTL bounds how long a claim being changed holds its email
// against takeover should its writer stop half-way: longer than any
// write (a few round trips, each at most readTimeout, with retries).
const emailLeaseTTL = 30 * time.Second

// emailTaken is the error for an email another account has.
func emailTaken(email, holder string) error {
	return fmt.Errorf("email %q is the email of account %q: %w", email, holder, store.ErrEmailTaken)
}

// claimEmail takes the claim of email (a store.EmailKey) for name, with a
// lease, and returns the lease's token for dropLease. It decides from a
// read of the claim, the lease and (for another holder) that holder's
// record, then writes under WATCH of the claim and the lease, so that it
// writes only if neither changed since. It never holds a connection
// while it waits for another (a Cluster's pool would run dry under
// concurrent writers).
func (s *Store) claimEmail(ctx context.Context, email, name string) (string, error) {
	claim, lease := s.k.emailClaim(email), s.k.emailLease(email)
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	err := retryTx("claim email", email, func() error {
		vals, err := s.rdb.MGet(ctx, claim, lease).Result()
		if err != nil {
			return err
		}
		holder, _ := vals[0].(string)
		leased, _ := vals[1].(string)
		if holder != "" && holder != name {
			if leased != "" {
				return final(emailTaken(email, holder))
			}
			a, err := s.Account(ctx, holder)
			switch {
			case err == nil && store.EmailKey(a.Email) == email:
				return final(emailTaken(email, holder))
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return final(err)
			}
			// The holder does not have the email (any more): the claim
			// is taken over, unless it changes meanwhile.
		}
		return s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
			now, err := tx.MGet(ctx, claim, lease).Result()
			if err != nil {
				return err
			}
			if h, _ := now[0].(string); h != holder {
				return redis.TxFailedErr
			}
			if l, _ := now[1].(string); l != leased {
				return redis.TxFailedErr
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, claim, name, 0)
				p.Set(ctx, lease, token, emailLeaseTTL)
				return nil
			})
			return err
		}, claim, lease)
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// dropLease ends the lease that claimEmail took with token, if it is
// still that one. Best effort: a lease left behind expires.
func (s *Store) dropLease(ctx context.Context, email, token string) {
	ctx = context.WithoutCancel(ctx)
	lease := s.k.emailLease(email)
	s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
		if v, err := tx.Get(ctx, lease).Result(); err != nil || v != token {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, lease)
			return nil
		})
		return err
	}, lease)
}

// releaseClaim deletes the claim of email if name holds it and nobody is
// changing it. Best effort: a claim left behind is taken over when its
// holder's record does not have the email.
func (s *Store) releaseClaim(ctx context.Context, email, name string) {
	ctx = context.WithoutCancel(ctx)
	claim, lease := s.k.emailClaim(email), s.k.emailLease(email)
	s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
		vals, err := tx.MGet(ctx, claim, lease).Result()
		if err != nil || vals[0] != name || vals[1] != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, claim)
			return nil
		})
		return err
	}, claim, lease)
}

// createInCluster is CreateAccount on a Cluster: the email's claim first,
// then the name in the listing, then the record with SET NX, which alone
// decides whether the name was free.
func (s *Store) createInCluster(ctx context.Context, a store.Account, b []byte) error {
	key, email := s.k.account(a.Name), store.EmailKey(a.Email)
	if n, err := s.rdb.Exists(ctx, key).Result(); err != nil {
		return wrap("create account", err)
	} else if n > 0 {
		return fmt.Errorf("create account %q: %w", a.Name, store.ErrExists)
	}
	if email != "" {
		token, err := s.claimEmail(ctx, email, a.Name)
		if err != nil {
			return fmt.Errorf("create account %q: %w", a.Name, err)
		}
		defer s.dropLease(ctx, email, token)
	}
	// A name listed before its record exists is skipped by listings
	// (never dropped on a Cluster: see ListAccounts); a record that
	// listings miss would be worse. A creation that fails after this
	// leaves the name listed, skipped, until an account of that name is
	// made or deleted.
	if err := s.rdb.ZAdd(ctx, s.k.accountNames, redis.Z{Member: a.Name}).Err(); err != nil {
		return wrap("create account", err)
	}
	ok, err := s.rdb.SetNX(ctx, key, b, 0).Result()
	if err != nil {
		return wrap("create account", err)
	}
	if !ok {
		return fmt.Errorf("create account %q: %w", a.Name, store.ErrExists)
	}
	return nil
}

// updateInCluster is UpdateAccount on a Cluster: the record under WATCH,
// and a new email's claim taken before the record is written. The claim
// is taken between two attempts, not inside one (see claimEmail), so fn
// runs once more when the email changes.
func (s *Store) updateInCluster(ctx context.Context, name string, fn func(*store.Account) error) error {
	key := s.k.account(name)
	held := map[string]string{} // emails claimed for this update: lease tokens
	defer func() {
		for email, token := range held {
			s.dropLease(ctx, email, token)
		}
	}()
	var before, after string
	err := retryTx("update account", name, func() error {
		var claim string // set when the new email must be claimed first
		err := s.watch(ctx, func(ctx context.Context, tx *redis.Tx) error {
			a, err := getJSON[store.Account](ctx, tx, "load account", key)
			if err != nil {
				return final(err)
			}
			before = store.EmailKey(a.Email)
			id := a.ID
			if err := fn(&a); err != nil {
				return final(err)
			}
			a.Name, a.ID = name, id
			after = store.EmailKey(a.Email)
			if _, ok := held[after]; after != before && after != "" && !ok {
				claim = after
				return errClaimFirst
			}
			b, err := json.Marshal(a)
			if err != nil {
				return final(fmt.Errorf("encode account: %w", err))
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, b, 0)
				return nil
			})
			return err
		}, key)
		if claim == "" {
			return err
		}
		token, err := s.claimEmail(ctx, claim, name)
		if err != nil {
			return final(fmt.Errorf("update account %q: %w", name, err))
		}
		held[claim] = token
		return redis.TxFailedErr // not written: try again, now holding the claim
	})
	if err != nil {
		return err
	}
	if before != after && before != "" {
		s.releaseClaim(ctx, before, name)
	}
	return nil
}

// errClaimFirst ends an attempt of updateInCluster that needs a claim.
var errClaimFirst = errors.New("claim the email first")

// deleteInCluster is DeleteAccount on a Cluster: the record under WATCH,
// then its name from the listing and its email's claim.
func (s *Store) deleteInCluster(ctx context.Context, name string) error {
	key := s.k.account(name)
	var email string
	err := retryTx("delete account", name, func() error {
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
			email = store.EmailKey(a.Email)
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, key)
				return nil
			})
			return err
		}, key)
	})
	if err != nil {
		return err
	}
	if err := s.rdb.ZRem(ctx, s.k.accountNames, name).Err(); err != nil {
		return wrap("delete account", err)
	}
	if email != "" {
		s.releaseClaim(ctx, email, name)
	}
	return nil
}
