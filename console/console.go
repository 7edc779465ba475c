package console

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
)

//go:embed assets
var embedded embed.FS

// Assets returns the console's files, flat: index.html (the page), its ES
// modules (*.js) and its style sheet (console.css).
func Assets() (fs.FS, error) {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	return sub, nil
}

// ContentType returns the media type the console's file name is served
// with, or "" for a name the console does not serve.
func ContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return ""
}
