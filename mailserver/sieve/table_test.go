package sieve

import "testing"

func allCases() []evalCase {
	var all []evalCase
	all = append(all, rfcCases...)
	all = append(all, clientCases...)
	all = append(all, extensionCases...)
	all = append(all, probeCases...)
	all = append(all, moreCases...)
	return all
}

func TestEvaluate(t *testing.T) {
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}
