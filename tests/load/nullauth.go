package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The floor of the nginx ratio: nginx's auth_request asking a
// forward-auth server that does no work at all. It answers every request
// on a Unix socket with 200 and the headers the portal's own verify
// socket answered the bench session with (the same Remote-* values and
// policy headers, so that nginx reads and forwards the same answer),
// from a process of its own so that its CPU is counted apart. What the
// app page behind it gets, against nginx alone, is the most any
// forward-auth server answering over HTTP could get on this machine;
// the portal's figure against it is what the portal's own work costs.

// nullAuthFlag is the flag (for the ratios' own use) that makes this
// tool that server.
const nullAuthFlag = "serve-null-auth"

// nullAuthPID is the server's process ID, for cpuByName.
var nullAuthPID atomic.Value

// serveNullAuth is the server: it listens on socket and answers with the
// headers in socket+".headers" (JSON), until killed.
func serveNullAuth(socket string) error {
	b, err := os.ReadFile(socket + ".headers")
	if err != nil {
		return err
	}
	var answer http.Header
	if err := json.Unmarshal(b, &answer); err != nil {
		return err
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range answer {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
	}))
}

// startNullAuth starts the do-nothing server on socket, on cpus (the
// portals' CPUs; all when ""), answering as the portal's verify socket
// answers a verify request carrying headers. stop ends it.
func startNullAuth(socket, portalSocket string, headers []string, cpus string) (stop func(), err error) {
	answer, err := verifyAnswer(portalSocket, headers)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(answer)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(socket+".headers", b, 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-"+nullAuthFlag, socket)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	nullAuthPID.Store(strconv.Itoa(cmd.Process.Pid))
	if cpus == "" {
		cpus = "0-" + strconv.Itoa(runtime.NumCPU()-1)
	}
	if err := pin(cmd.Process.Pid, cpus); err != nil {
		stop()
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return stop, nil
		}
	}
	stop()
	return nil, fmt.Errorf("the do-nothing forward-auth server does not listen on %s", socket)
}

// verifyAnswer asks the portal's verify socket once, with headers
// ("Name: value"), and returns the headers of its 200 answer, without
// the ones net/http writes itself.
func verifyAnswer(socket string, headers []string) (http.Header, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://localhost/auth/verify", nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	if err := req.Write(c); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the portal's verify socket answered the bench session with %s", resp.Status)
	}
	if resp.Header.Get("Remote-User") != benchUser {
		return nil, fmt.Errorf("the portal's verify socket answered without Remote-User %s", benchUser)
	}
	for _, k := range []string{"Date", "Content-Length"} {
		resp.Header.Del(k)
	}
	return resp.Header, nil
}
