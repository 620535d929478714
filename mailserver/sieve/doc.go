// Package sieve parses, validates and runs Sieve mail filtering scripts (RFC 5228 and the
// extensions mail clients generate), turning a message and its envelope into actions.
package sieve
