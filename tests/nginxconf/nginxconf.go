// Package nginxconf writes the nginx configuration that
// docs/forward-auth.md documents, with a test's or a benchmark's host
// names, ports and paths in place of the placeholders. The end-to-end
// test (tests/nginx_test.go) and the load tool (tests/load) both run it,
// so the documented configuration is the one tested and the one measured.
package nginxconf

import (
	"io"
	"text/template"
)

// Params are the values that differ from one installation to another.
type Params struct {
	// User, when set, is the user nginx's workers run as (root when the
	// tests run as root, so they can write into a private directory).
	User string
	// Dir holds every file nginx writes (logs, temporary files).
	Dir string
	// Workers is worker_processes (1 when zero).
	Workers int
	// Listen is the address of the protected sites, "127.0.0.1:PORT".
	Listen string
	// Hosts are the protected sites, one server block each.
	Hosts []string
	// Cert and Key are the sites' certificate and key files.
	Cert, Key string
	// App is the internal app's "host:port" (plain HTTP).
	App string
	// PortalAddr is the portal's "host:port"; PortalHost the Host header
	// nginx sends it and PortalName the name its certificate carries.
	PortalAddr, PortalHost, PortalName string
	// CA is the file of the CA that issued the portal's certificate.
	CA string
	// PortalSocket, when set, is the portal's verify socket (serve
	// --verify-socket): nginx then asks the portal over plain HTTP on
	// that Unix socket, for a portal on the same host, and PortalAddr,
	// PortalName and CA are not used. PortalHost is still sent as Host:
	// the login URL the portal answers with is built from it.
	PortalSocket string
	// OpenPath, when set, is a location ("/open/") that passes requests
	// to the same app without asking the portal: the baseline the load
	// tool measures the protected site against. Never in a real site.
	OpenPath string
}

// Write writes the configuration for p to w.
func Write(w io.Writer, p Params) error {
	if p.Workers == 0 {
		p.Workers = 1
	}
	return config.Execute(w, p)
}

// config is the configuration of docs/forward-auth.md ("nginx (tested)"),
// both variants (over the verify socket, and over TLS): keep the two in
// step (tests/nginx_test.go checks).
var config = template.Must(template.New("nginx.conf").Parse(`{{if .User}}user {{.User}};
{{end}}worker_processes {{.Workers}};
events { worker_connections 1024; }

http {
    access_log off;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;

    ssl_protocols TLSv1.2 TLSv1.3;

    # Connections to the portal and to the app stay open between
    # requests (keepalive here, HTTP/1.1 and an empty Connection header
    # in each location): without them every app request would cost a
{{- if .PortalSocket}}
    # new connection to the portal.
    upstream gatehouse {
        # The portal's verify socket (gatehouse serve --verify-socket):
        # nginx's user must be in the portal's group to connect.
        server unix:{{.PortalSocket}};
        keepalive 32;
    }
{{- else}}
    # new TCP connection and a TLS handshake with the portal.
    upstream gatehouse {
        server {{.PortalAddr}};
        keepalive 32;
    }
{{- end}}
    upstream app {
        server {{.App}};
        keepalive 32;
    }

    # Names no site below serves get no handshake. Without this the first
    # site would answer for any name, and X-Original-URL (built from the
    # request's Host) could name an app that lives elsewhere, with other
    # roles, while this site's app is what gets served.
    server {
        listen {{.Listen}} ssl default_server;
        ssl_reject_handshake on;
    }
{{range .Hosts}}
    server {
        listen {{$.Listen}} ssl;
        server_name {{.}};
        ssl_certificate {{$.Cert}};
        ssl_certificate_key {{$.Key}};
        # Ask for a client certificate; Gatehouse verifies it.
        ssl_verify_client optional_no_ca;

        location / {
            auth_request /_gatehouse;
            auth_request_set $gatehouse_user $upstream_http_remote_user;
            auth_request_set $gatehouse_email $upstream_http_remote_email;
            auth_request_set $gatehouse_roles $upstream_http_remote_roles;
            auth_request_set $gatehouse_factors $upstream_http_remote_factors;
            auth_request_set $gatehouse_login $upstream_http_location;
            error_page 401 =302 $gatehouse_login;

            # These replace whatever the client sent under the same names.
            proxy_set_header Host $host;
            proxy_set_header Remote-User $gatehouse_user;
            proxy_set_header Remote-Email $gatehouse_email;
            proxy_set_header Remote-Roles $gatehouse_roles;
            proxy_set_header Remote-Factors $gatehouse_factors;
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_pass http://app;
        }
{{if $.OpenPath}}
        location {{$.OpenPath}} {
            proxy_set_header Host $host;
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_pass http://app;
        }
{{end}}
        location = /_gatehouse {
            internal;
{{- if $.PortalSocket}}
            proxy_pass http://gatehouse/auth/verify;
{{- else}}
            proxy_pass https://gatehouse/auth/verify;
{{- end}}
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_set_header Host {{$.PortalHost}};
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
            # Never pass on a Traefik-style header the client sent.
            proxy_set_header X-Forwarded-Tls-Client-Cert "";
{{- if not $.PortalSocket}}
            proxy_ssl_server_name on;
            proxy_ssl_name {{$.PortalName}};
            proxy_ssl_session_reuse on;
            proxy_ssl_trusted_certificate {{$.CA}};
            proxy_ssl_verify on;
{{- end}}
        }
    }
{{end}}}
`))
