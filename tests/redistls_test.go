package tests

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/store/storetest"
)

// Redis over TLS (rediss://), as managed services and most production
// Redis servers run it: a server certificate from a private CA, which
// the portal trusts through SSL_CERT_FILE (README, "Redis over TLS").
// checkStore runs the operator's day on it. Without the CA, or
// with the server named as its certificate does not name it, the
// command line and the portal refuse the server and say why.
func TestRedisOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, url := startTLSRedis(t, dir)

	p := checkStore(t, dir, url, "SSL_CERT_FILE="+caFile)

	untrusting := &portal{Data: p.Data, StoreURL: url, bin: p.bin, logDir: t.TempDir()}
	if stderr := untrusting.cliFails(t, "user", "list"); !strings.Contains(stderr, "not from a CA this host trusts") || !strings.Contains(stderr, "--store-ca") {
		t.Errorf("gatehouse user list without the Redis server's CA: %q, want it to say how to trust it", stderr)
	}
	// --store-ca trusts its CAs only: another CA's file refuses the
	// server, even where the system's CAs (SSL_CERT_FILE) would take it.
	other := newRootCA(t, "Another CA", nil)
	otherFile := filepath.Join(dir, "other-ca.crt")
	writeCertPEM(t, otherFile, other.Cert)
	onlyOther := &portal{Data: p.Data, StoreURL: url, bin: p.bin, logDir: t.TempDir(),
		Env: []string{"SSL_CERT_FILE=" + caFile, "GATEHOUSE_STORE_CA=" + otherFile}}
	if stderr := onlyOther.cliFails(t, "user", "list"); !strings.Contains(stderr, "not from a CA this host trusts") {
		t.Errorf("gatehouse user list with --store-ca naming another CA: %q, want the server refused", stderr)
	}
	withCA := &portal{Data: p.Data, StoreURL: url, bin: p.bin, logDir: t.TempDir(), Env: []string{"GATEHOUSE_STORE_CA=" + caFile}}
	if out := withCA.cli(t, "", "user", "list"); !strings.Contains(out, "bob") {
		t.Errorf("gatehouse user list with --store-ca naming the server's CA:\n%s", out)
	}
	// A URL that turns the check off is refused, whatever it trusts.
	unchecked := &portal{Data: p.Data, StoreURL: url + "?skip_verify=true", bin: p.bin, logDir: t.TempDir(), Env: p.Env}
	if stderr := unchecked.cliFails(t, "user", "list"); !strings.Contains(stderr, "skip_verify") || !strings.Contains(stderr, "not allowed") {
		t.Errorf("gatehouse user list with skip_verify in the URL: %q, want it refused", stderr)
	}
	// --store-ca on a store without TLS says so.
	plain := &portal{Data: p.Data, StoreURL: "redis://127.0.0.1:1/0", bin: p.bin, logDir: t.TempDir(), Env: []string{"GATEHOUSE_STORE_CA=" + caFile}}
	if stderr := plain.cliFails(t, "user", "list"); !strings.Contains(stderr, "does not use TLS") {
		t.Errorf("gatehouse user list with --store-ca and a redis:// URL: %q, want it to say the URL has no TLS", stderr)
	}
	// The server's certificate names localhost only.
	byAddress := &portal{Data: p.Data, StoreURL: strings.Replace(url, "localhost", "127.0.0.1", 1), bin: p.bin, logDir: t.TempDir(), Env: p.Env}
	if stderr := byAddress.cliFails(t, "user", "list"); !strings.Contains(stderr, "does not name the host it was reached at") {
		t.Errorf("gatehouse user list with Redis named by an address its certificate does not name: %q, want it to say so", stderr)
	}
}

// checkStore runs a portal on the store at url, with env (which
// says what CA to trust, over TLS): init, serve, a sign-in with the
// admin's certificate, and a change through the command line counted on
// the portal's next request (the store cache's feed reaches Redis the
// same way as the store). It returns the portal.
func checkStore(t *testing.T, dir, url string, env ...string) *portal {
	t.Helper()
	p := &portal{Data: filepath.Join(dir, "data"), StoreURL: url, bin: gatehouseBinary(t), logDir: dir, Env: env}
	p.cli(t, "", "init")
	p.start(t)
	cert := p.adminCert(t)
	admin := p.client(t, &cert)
	wantRedirect(t, admin.login(t, "admin", p.AdminPassword), "/")
	wantEffective(t, "the admin on "+url, admin.session(t), "admin", "employee")
	p.cli(t, bobPassword+"\n", "user", "add", "bob", "--role", "employee", "--password-stdin")
	bob := p.client(t, nil)
	wantRedirect(t, bob.login(t, "bob", bobPassword), "/")
	for range 3 {
		wantEffective(t, "bob", bob.session(t), "employee")
	}
	p.cli(t, "", "user", "disable", "bob")
	wantUnauthenticated(t, bob.get(t, "/api/session"))
	// The feed connects to each server after the portal starts, so the
	// first requests may read the store itself; it must be in use by now.
	out := p.server.output()
	if strings.Contains(out, "store cache off") || strings.LastIndex(out, "store cache not in use") > strings.LastIndex(out, "store cache in use again") {
		t.Errorf("the store cache is not in use on %s:\n%s", url, out)
	}
	p.server.wantStructuredLog(t)
	return p
}

// redisPKI is a CA made for a test's Redis servers that speak TLS.
type redisPKI struct {
	ca     *testCA
	caFile string
	roots  *x509.CertPool
	dir    string
}

func newRedisPKI(t *testing.T, dir string) *redisPKI {
	t.Helper()
	k := &redisPKI{ca: newRootCA(t, "Gatehouse test Redis CA", nil), caFile: filepath.Join(dir, "redis-ca.crt"), roots: x509.NewCertPool(), dir: dir}
	writeCertPEM(t, k.caFile, k.ca.Cert)
	k.roots.AddCert(k.ca.Cert)
	return k
}

// serverCert issues a server certificate for the DNS names and IP
// addresses given and writes it and its key as name.crt and name.key.
func (k *redisPKI) serverCert(t *testing.T, name string, dnsNames []string, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	leaf := k.ca.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		// Cluster nodes connect to each other with it too.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, key.Public())
	certFile, keyFile = filepath.Join(k.dir, name+".crt"), filepath.Join(k.dir, name+".key")
	writeCertPEM(t, certFile, leaf)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

var loopback = net.IPv4(127, 0, 0, 1)

// startServer starts a redis-server that speaks only TLS, with the
// certificate and key given, on a free port of 127.0.0.1, its files in
// dir, with extra arguments, and waits until it answers PING over TLS
// checked against serverName ("" for the address). It is stopped when
// the test ends. It returns the port.
func (k *redisPKI) startServer(t *testing.T, dir, certFile, keyFile, serverName string, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		storetest.NeedService(t, "redis-server is not installed (apt-get install redis-server): this test starts Redis servers that speak TLS")
	}
	port := strconv.Itoa(freePort(t))
	args := []string{"--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", k.caFile, "--tls-auth-clients", "no",
		"--dir", dir, "--save", "", "--appendonly", "yes", "--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}
	cmd := exec.Command(bin, append(args, extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server with TLS: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: k.roots, ServerName: serverName})
		if err == nil {
			c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			// A server with a password answers, but refuses the PING.
			if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
				return port
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server with TLS does not answer on %s: %v\n%s", addr, err, log)
		}
	}
}

// startTLSRedis starts one redis-server that speaks only TLS, with a
// certificate for localhost, and returns its CA's file and a rediss://
// URL for it.
func startTLSRedis(t *testing.T, dir string) (caFile, url string) {
	t.Helper()
	k := newRedisPKI(t, dir)
	certFile, keyFile := k.serverCert(t, "redis", []string{"localhost"})
	port := k.startServer(t, dir, certFile, keyFile, "localhost")
	return k.caFile, "rediss://localhost:" + port + "/0"
}

// A Redis Cluster over TLS, each node with a certificate of its own, as
// production clusters run. The client follows the slots to the address
// each node announces and checks that node's certificate against it:
//
//   - NodesAnnounceAHostName: the nodes announce "localhost"
//     (cluster-announce-hostname, cluster-preferred-endpoint-type
//     hostname) and their certificates name only that, so dialing an
//     address instead would fail;
//   - NodesAnnounceAnAddress: the nodes announce 127.0.0.1, the URL
//     names the first as localhost, and the others' certificates name
//     only their address: checking every node against the URL's host
//     (go-redis's default for rediss:// cluster URLs) would refuse them;
//   - NodesShareOneCertificate: the nodes announce 127.0.0.1 and share
//     one certificate that names only localhost: refused as it is, and
//     taken with ?tls_server_name=localhost, which checks every node
//     against that name.
//
// Each runs checkStore.
func TestRedisClusterOverTLS(t *testing.T) {
	t.Parallel()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		storetest.NeedService(t, "redis-cli is not installed (apt-get install redis-tools): this test creates its clusters with redis-cli --cluster create")
	}
	const (
		byName    = "NodesAnnounceAHostName"
		byAddress = "NodesAnnounceAnAddress"
		shared    = "NodesShareOneCertificate"
	)
	for _, name := range []string{byName, byAddress, shared} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			k := newRedisPKI(t, dir)
			var ports []string
			var sharedCert, sharedKey string
			if name == shared {
				sharedCert, sharedKey = k.serverCert(t, "every-node", []string{"localhost"})
			}
			for i := range 3 {
				nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
				if err := os.Mkdir(nodeDir, 0o700); err != nil {
					t.Fatal(err)
				}
				args := []string{"--tls-cluster", "yes", "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
					"--cluster-node-timeout", "2000"}
				var certFile, keyFile, serverName string
				switch {
				case name == byName:
					certFile, keyFile = k.serverCert(t, fmt.Sprintf("node%d", i), []string{"localhost"})
					serverName = "localhost"
					args = append(args, "--cluster-announce-hostname", "localhost", "--cluster-preferred-endpoint-type", "hostname")
				case name == shared:
					certFile, keyFile, serverName = sharedCert, sharedKey, "localhost"
				case i == 0:
					certFile, keyFile = k.serverCert(t, "node0", []string{"localhost"}, loopback)
				default:
					certFile, keyFile = k.serverCert(t, fmt.Sprintf("node%d", i), nil, loopback)
				}
				ports = append(ports, k.startServer(t, nodeDir, certFile, keyFile, serverName, args...))
			}
			tlsArgs := []string{"--tls", "--cacert", k.caFile}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			create := append(slices.Clone(tlsArgs), "--cluster", "create")
			for _, port := range ports {
				create = append(create, "127.0.0.1:"+port)
			}
			if out, err := exec.CommandContext(ctx, cli, append(create, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput(); err != nil {
				t.Fatalf("redis-cli --cluster create over TLS: %v\n%s", err, out)
			}
			for _, port := range ports {
				for {
					out, _ := exec.CommandContext(ctx, cli, append(slices.Clone(tlsArgs), "-h", "127.0.0.1", "-p", port, "cluster", "info")...).CombinedOutput()
					if strings.Contains(string(out), "cluster_state:ok") && strings.Contains(string(out), "cluster_known_nodes:3") {
						break
					}
					if ctx.Err() != nil {
						t.Fatalf("the TLS cluster did not become ready (node %s: %s)", port, out)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			if name == byName {
				out, _ := exec.CommandContext(ctx, cli, append(slices.Clone(tlsArgs), "-h", "127.0.0.1", "-p", ports[0], "cluster", "slots")...).CombinedOutput()
				if strings.Count(string(out), "localhost") != 3 {
					t.Fatalf("CLUSTER SLOTS does not announce the nodes by host name:\n%s", out)
				}
			}
			url := "rediss+cluster://localhost:" + ports[0]
			if name == shared {
				// Dialed at the addresses they announce, the nodes'
				// certificate names none of them: refused, with the way
				// out named.
				refused := &portal{Data: filepath.Join(dir, "refused"), StoreURL: url, bin: gatehouseBinary(t), logDir: t.TempDir(),
					Env: []string{"GATEHOUSE_STORE_CA=" + k.caFile}}
				if stderr := refused.cliFails(t, "init"); !strings.Contains(stderr, "does not name the host") || !strings.Contains(stderr, "tls_server_name") {
					t.Errorf("gatehouse init on nodes that share a certificate naming only the URL's host: %q, want it refused, naming tls_server_name", stderr)
				}
				// Checked against the name given, it must be the
				// certificate's.
				wrongName := &portal{Data: filepath.Join(dir, "refused"), StoreURL: url + "?tls_server_name=redis.example", bin: gatehouseBinary(t), logDir: t.TempDir(),
					Env: []string{"GATEHOUSE_STORE_CA=" + k.caFile}}
				if stderr := wrongName.cliFails(t, "init"); !strings.Contains(stderr, "does not name the tls_server_name") {
					t.Errorf("gatehouse init with a tls_server_name the nodes' certificate does not hold: %q, want it refused, saying so", stderr)
				}
				url += "?tls_server_name=localhost"
			}

			checkStore(t, dir, url, "GATEHOUSE_STORE_CA="+k.caFile)
		})
	}
}

// Sentinel over TLS (rediss+sentinel://): the URL names the Sentinel by
// host name, and the Sentinel names the master by its address, whose
// certificate names only that address. Checking the master against the
// URL's host (go-redis's default) would refuse it. It runs
// checkStore.
func TestRedisSentinelOverTLS(t *testing.T) {
	t.Parallel()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		storetest.NeedService(t, "redis-cli is not installed (apt-get install redis-tools): this test asks its Sentinel with redis-cli")
	}
	dir := t.TempDir()
	k := newRedisPKI(t, dir)
	masterDir, sentinelDir := filepath.Join(dir, "master"), filepath.Join(dir, "sentinel")
	for _, d := range []string{masterDir, sentinelDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Passwords on both, as README asks: the URL's user part logs in to
	// the Sentinel, its password= to the master.
	const sentinelPassword, masterPassword = "sentinel-secret-2026", "master-secret-2026"
	certFile, keyFile := k.serverCert(t, "master", nil, loopback)
	masterPort := k.startServer(t, masterDir, certFile, keyFile, "", "--requirepass", masterPassword)

	sentinelCert, sentinelKey := k.serverCert(t, "sentinel", []string{"localhost"})
	port := strconv.Itoa(freePort(t))
	conf := filepath.Join(sentinelDir, "sentinel.conf")
	text := strings.Join([]string{
		"port 0", "tls-port " + port, "bind 127.0.0.1", "dir " + sentinelDir,
		"tls-cert-file " + sentinelCert, "tls-key-file " + sentinelKey, "tls-ca-cert-file " + k.caFile,
		"tls-auth-clients no", "tls-replication yes",
		"requirepass " + sentinelPassword,
		"sentinel monitor " + storetest.SentinelMaster + " 127.0.0.1 " + masterPort + " 1",
		"sentinel auth-pass " + storetest.SentinelMaster + " " + masterPassword, "",
	}, "\n")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, _ := exec.LookPath("redis-server")
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sentinel: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		out, _ := exec.CommandContext(ctx, cli, "--tls", "--cacert", k.caFile, "-h", "127.0.0.1", "-p", port,
			"--user", "default", "--pass", sentinelPassword, "--no-auth-warning",
			"sentinel", "get-master-addr-by-name", storetest.SentinelMaster).CombinedOutput()
		if strings.Contains(string(out), masterPort) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the Sentinel over TLS does not name the master: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	url := "rediss+sentinel://:" + sentinelPassword + "@localhost:" + port + "/0?master_name=" + storetest.SentinelMaster + "&password=" + masterPassword

	p := checkStore(t, dir, url, "GATEHOUSE_STORE_CA="+k.caFile)
	p.wantLogsFree(t, sentinelPassword, masterPassword)
}
