package redisstore

import (
	"slices"
	"strings"
	"testing"
)

// The store URL's forms: which servers, which database, and against
// which name each server's certificate is checked.
func TestParseURL(t *testing.T) {
	tests := []struct {
		name, url  string
		addrs      []string
		db         int
		serverName string // "" with TLS: each server is checked against the host it is dialed at
		tls        bool
	}{
		{"OneServer", "redis://localhost:6379/2", []string{"localhost:6379"}, 2, "", false},
		{"OneServerOverTLS", "rediss://redis.example:6380/0", []string{"redis.example:6380"}, 0, "redis.example", true},
		{"OneServerByAddressCheckedAgainstAName", "rediss://10.0.0.5:6380/0?tls_server_name=redis.internal", []string{"10.0.0.5:6380"}, 0, "redis.internal", true},
		{"UnixSocket", "unix:///run/redis/redis-server.sock?db=3", []string{"/run/redis/redis-server.sock"}, 3, "", false},
		{"UnixSocketWithPassword", "unix://:pw@/run/redis/redis-server.sock", []string{"/run/redis/redis-server.sock"}, 0, "", false},
		{"ClusterEachNodeItsName", "rediss+cluster://a.example:7000?addr=b.example:7001", []string{"a.example:7000", "b.example:7001"}, 0, "", true},
		{"ClusterOneSharedName", "rediss+cluster://a.example:7000?addr=b.example:7001&tls_server_name=redis.internal", []string{"a.example:7000", "b.example:7001"}, 0, "redis.internal", true},
		{"SentinelOneSharedName", "rediss+sentinel://s.example:26379/1?master_name=main&tls_server_name=redis.internal", []string{"s.example:26379"}, 1, "redis.internal", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseURL(tc.url)
			if err != nil {
				t.Fatalf("parseURL(%q): %v", tc.url, err)
			}
			if !slices.Equal(o.Addrs, tc.addrs) || o.DB != tc.db {
				t.Errorf("parseURL(%q): servers %q, database %d; want %q, %d", tc.url, o.Addrs, o.DB, tc.addrs, tc.db)
			}
			if (o.TLSConfig != nil) != tc.tls {
				t.Fatalf("parseURL(%q): TLS %v, want %v", tc.url, o.TLSConfig != nil, tc.tls)
			}
			if tc.tls && o.TLSConfig.ServerName != tc.serverName {
				t.Errorf("parseURL(%q): certificates checked against %q, want %q", tc.url, o.TLSConfig.ServerName, tc.serverName)
			}
		})
	}
}

func TestParseURL_RefusesWhatWouldWeakenOrMislead(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"SkipVerify", "rediss://localhost:6380/0?skip_verify=true", "skip_verify"},
		{"ServerNameWithoutTLS", "redis://localhost:6379/0?tls_server_name=redis.internal", "rediss://"},
		{"EmptyServerName", "rediss://localhost:6380/0?tls_server_name=", "one host name"},
		{"TwoServerNames", "rediss://localhost:6380/0?tls_server_name=a&tls_server_name=b", "one host name"},
		{"UnknownParameter", "rediss://localhost:6380/0?tls_servername=a", "tls_servername"},
		{"Fragment", "rediss://localhost:6380/0#?tls_server_name=a", "%23"},
		{"FragmentInAPassword", "rediss://:pass#word@localhost:6380/0", "%23"},
		{"UnixRelativePath", "unix://run/redis/redis-server.sock?db=0", "absolute path"},
		{"UnixRelativePathWithPassword", "unix://:pw@run/redis.sock", "absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseURL(tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseURL(%q): %v, want an error naming %q", tc.url, err, tc.want)
			}
		})
	}
}

// A URL that does not parse is refused without being quoted: net/url's
// errors hold the whole URL, and with it the passwords.
func TestParseURL_ErrorsDoNotQuoteTheURL(t *testing.T) {
	for _, url := range []string{
		"redis://user:se?cret@host:6379/0",
		"redis://user:secret@[::1/0",
		"rediss+cluster://:secret@[::1:7000?addr=b:7001",
		"redis+sentinel://:secret@[::1/0?master_name=main&password=secret",
		"unix://:secret@/run/redis.sock?db=%zz",
	} {
		_, err := parseURL(url)
		if err == nil {
			t.Errorf("parseURL(%q) succeeded, want an error", url)
			continue
		}
		if strings.Contains(err.Error(), "cret") || strings.Contains(err.Error(), ":se") {
			t.Errorf("parseURL(%q): %q quotes the password", url, err)
		}
	}
}
