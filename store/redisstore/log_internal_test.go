package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// The client's messages become JSON events: what only the client can
// tell at warn, Sentinel's news at info, the failures the store's own
// errors already report (a Sentinel's failed lookups included) at debug.
func TestClientLog_LevelsAndOneEventPerMessage(t *testing.T) {
	var buf bytes.Buffer
	log := clientLog{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	log.Printf(context.Background(), "sentinel: new master=%q addr=%q", "main", "10.0.0.7:6379")
	log.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s\n", 1, "dial tcp 10.0.0.5:6379: connect: connection refused")
	log.Printf(context.Background(), "sentinel: GetMasterAddrByName name=%q failed: %s", "main", "i/o timeout")
	log.Printf(context.Background(), "redis: re-authentication failed: %v", "WRONGPASS")
	var events []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var e map[string]any
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("not one JSON event per message: %v\n%s", err, buf.String())
		}
		events = append(events, e)
	}
	want := []struct{ level, detail string }{
		{"INFO", `sentinel: new master="main" addr="10.0.0.7:6379"`},
		{"DEBUG", "redis: connection pool: failed to dial after 1 attempts: dial tcp 10.0.0.5:6379: connect: connection refused"},
		{"DEBUG", `sentinel: GetMasterAddrByName name="main" failed: i/o timeout`},
		{"WARN", "redis: re-authentication failed: WRONGPASS"},
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d:\n%s", len(events), len(want), buf.String())
	}
	for i, w := range want {
		if events[i]["level"] != w.level || events[i]["detail"] != w.detail || events[i]["msg"] != "redis client" {
			t.Errorf("event %d: %v, want level %s, detail %q", i, events[i], w.level, w.detail)
		}
	}
}
