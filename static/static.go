// Package static holds the portal's stylesheet and images, served under
// /static/.
package static

import "embed"

// FS holds the static files.
//
//go:embed *.css *.svg
var FS embed.FS
