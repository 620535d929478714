// Package version holds the build's version, set with -ldflags at build time.
package version

// Version is the release (e.g. v0.1.0); "dev" for a build from a work tree.
var Version = "dev"
