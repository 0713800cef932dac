package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetClientLog sends the Redis client's own messages to l, as events of
// its structured log, instead of lines of plain text on standard error
// (go-redis's default) between the portal's JSON events; nil drops them.
// go-redis keeps one logger for the whole process, so this sets it for
// every store opened in it.
//
// The levels follow what each message tells an operator (clientLogLevel).
func SetClientLog(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	redis.SetLogger(clientLog{l})
}

type clientLog struct{ l *slog.Logger }

func (c clientLog) Printf(_ context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	c.l.Log(context.Background(), clientLogLevel(msg), "redis client", "detail", msg)
}

// clientLogLevel chooses a level for one of go-redis's messages, by its
// words (go-redis has no levels of its own for them):
//   - warn: what no event of the portal's would show: a panic the client
//     recovered from, a failed re-authentication, a connection in a
//     state the client did not expect;
//   - info: news of the topology, once per change: Sentinel's new master
//     or new sentinel, a Cluster's slots that moved;
//   - debug (not logged by default): the rest, mostly failed dials and
//     lookups, once per attempt, whose cause the portal's own events
//     (request failed, readiness check) already carry once per request
//     or check; at warn they would flood the log during an outage.
func clientLogLevel(msg string) slog.Level {
	switch {
	case strings.Contains(msg, "panic"), strings.Contains(msg, "re-authentication failed"),
		strings.HasPrefix(msg, "Unexpected conn"), strings.HasPrefix(msg, "redis: unknown message type"):
		return slog.LevelWarn
	case strings.HasPrefix(msg, "sentinel: new master"), strings.HasPrefix(msg, "sentinel: discovered new sentinel"),
		strings.HasPrefix(msg, "cluster: slots"):
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
