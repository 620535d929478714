//go:build race

package imapd

// raceEnabled is set when the race detector is on: it adds to every allocation and stack, so
// memory measurements mean less.
const raceEnabled = true
