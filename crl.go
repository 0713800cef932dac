package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"gatehouse/auth"
)

// crlWatcher keeps the CRL files given with --crl loaded, and reloads
// them when one changes, without a restart. A reload that fails (a file
// half-written, a bad signature) keeps the previous set and logs why.
type crlWatcher struct {
	files   []string
	issuers []*x509.Certificate
	log     *slog.Logger
	set     atomic.Pointer[auth.CRLSet]
	stamps  map[string]fileStamp
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// newCRLWatcher loads the CRL files; at start a bad file is an error.
func newCRLWatcher(files []string, issuers []*x509.Certificate, log *slog.Logger) (*crlWatcher, error) {
	w := &crlWatcher{files: files, issuers: issuers, log: log}
	if err := w.load(); err != nil {
		return nil, err
	}
	return w, nil
}

// current returns the CRL set in force.
func (w *crlWatcher) current() *auth.CRLSet { return w.set.Load() }

func (w *crlWatcher) load() error {
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
	set, err := auth.ParseCRLs(data, w.issuers)
	if err != nil {
		return err
	}
	w.set.Store(set)
	w.stamps = stamps
	if len(w.files) > 0 {
		w.log.Info("CRLs loaded", "files", len(w.files), "issuers", set.Len())
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
		if err := w.load(); err != nil {
			w.log.Error("CRL reload failed; keeping the previous lists", "err", err.Error())
		}
	}
}
