//go:build !linux

package main

// takeTerminal is Linux-only; elsewhere Ctrl-C reaches make too.
func takeTerminal() (restore func()) { return func() {} }
