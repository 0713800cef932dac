package server

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	tests := map[time.Duration]string{
		time.Minute:                     "1 minute",
		30 * time.Minute:                "30 minutes",
		time.Hour:                       "1 hour",
		12 * time.Hour:                  "12 hours",
		90 * time.Minute:                "1 hour 30 minutes",
		2*time.Hour + time.Minute:       "2 hours 1 minute",
		29*time.Minute + 40*time.Second: "30 minutes",
	}
	for d, want := range tests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
