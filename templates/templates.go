// Package templates holds the portal's server-rendered HTML pages. Each
// page defines "content" and is executed inside layout.html.
package templates

import "embed"

// FS holds the page templates.
//
//go:embed *.html
var FS embed.FS
