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
// The client reports failed dials and dropped connections, which the
// store's own errors already carry to the log with their cause, once per
// failed request or check; those are logged at debug level, below what
// the portal logs. What only the client knows, Sentinel's news of a new
// master or a new sentinel, is logged at info level.
func SetClientLog(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	redis.SetLogger(clientLog{l})
}

type clientLog struct{ l *slog.Logger }

func (c clientLog) Printf(_ context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := slog.LevelDebug
	if strings.HasPrefix(msg, "sentinel:") {
		level = slog.LevelInfo
	}
	c.l.Log(context.Background(), level, "redis client", "detail", msg)
}
