package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"sync/atomic"
	"time"

	"gatehouse/auth"
)

// crlWatcher keeps the CRL files given with --crl loaded, and reloads
// them when one changes, without a restart. A reload that fails (a file
// half-written, a bad signature, an older list) keeps the previous set
// and logs why.
//
// CRL numbers never go back: the highest number seen from each issuer is
// kept in the store (auth.CRLSet.Numbers says under which names), so a
// list older than one already seen is refused on a reload, on a restart,
// and by every instance that shares the store.
type crlWatcher struct {
	files   []string
	signers []*x509.Certificate
	numbers crlNumbers
	log     *slog.Logger
	set     atomic.Pointer[auth.CRLSet]
	stamps  map[string]fileStamp
}

// crlNumbers keeps the highest CRL number seen per issuer: the store's
// RaiseCounter.
type crlNumbers interface {
	RaiseCounter(ctx context.Context, name string, value *big.Int) (*big.Int, error)
}

// crlNumberCounter names the store counter of a CRL number, from
// auth.CRLNumber.Counter: an issuer's IssuerID (its key and canonical
// name), or the hash of one encoding of its name under which versions
// before that kept the number.
func crlNumberCounter(counter string) string { return "crl-number:" + counter }

type fileStamp struct {
	size    int64
	modTime time.Time
}

// newCRLWatcher loads the CRL files, which must be signed by one of
// signers (the client CAs and intermediates). At start a bad file is an
// error, and so is a list older than one seen before: the portal does
// not start rather than start with revoked certificates counting again
// (see docs/decisions.md).
func newCRLWatcher(ctx context.Context, files []string, signers []*x509.Certificate, numbers crlNumbers, log *slog.Logger) (*crlWatcher, error) {
	w := &crlWatcher{files: files, signers: signers, numbers: numbers, log: log}
	if err := w.load(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// current returns the CRL set in force.
func (w *crlWatcher) current() *auth.CRLSet { return w.set.Load() }

func (w *crlWatcher) load(ctx context.Context) error {
	data := make(map[string][]byte, len(w.files))
	stamps := make(map[string]fileStamp, len(w.files))
	for _, f := range w.files {
		info, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("CRL: %w", err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("CRL: %w", err)
		}
		data[f] = b
		stamps[f] = fileStamp{info.Size(), info.ModTime()}
	}
	set, err := auth.ParseCRLs(data, w.signers)
	if err != nil {
		return err
	}
	if err := set.Follows(w.set.Load()); err != nil {
		return err
	}
	for _, n := range set.Numbers() {
		// Raising before the whole set is known to be good is safe: a
		// list signed by a trusted CA proves its number was issued.
		seen, err := w.numbers.RaiseCounter(ctx, crlNumberCounter(n.Counter), n.Number)
		if err != nil {
			return fmt.Errorf("CRL %s (issuer %s): compare its CRL number with the highest seen: %w", n.File, n.Issuer, err)
		}
		if seen.Cmp(n.Number) > 0 {
			return &auth.OlderCRLError{File: n.File, Issuer: n.Issuer, Number: n.Number, Seen: seen}
		}
	}
	w.set.Store(set)
	w.stamps = stamps
	for _, l := range set.Lists() {
		w.log.Info("CRL in force", "issuer", l.Issuer, "number", l.Number.String(), "file", l.File)
	}
	return nil
}

// changed reports whether any file's size or modification time differs
// from the last successful load.
func (w *crlWatcher) changed() bool {
	for _, f := range w.files {
		info, err := os.Stat(f)
		if err != nil {
			return true
		}
		if (fileStamp{info.Size(), info.ModTime()}) != w.stamps[f] {
			return true
		}
	}
	return false
}

// watch reloads the files whenever they change, until ctx ends.
func (w *crlWatcher) watch(ctx context.Context, every time.Duration) {
	if len(w.files) == 0 || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !w.changed() {
			continue
		}
		if err := w.load(ctx); err != nil {
			w.log.Error("CRL reload failed; keeping the previous lists", "err", err.Error())
		}
	}
}
