package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// systemFlags are the flags every folder supports, in their canonical spelling. \Recent is
// not among them: it is a session property the server never sets (RFC 9051 dropped it).
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

// storeFlags turns client flags into stored ones: system flags in canonical case (flags are
// case-insensitive), keywords as given, \Recent and anything the store cannot keep dropped.
func storeFlags(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		s := string(f)
		if strings.HasPrefix(s, `\`) {
			i := slices.IndexFunc(systemFlags, func(sf imap.Flag) bool { return strings.EqualFold(string(sf), s) })
			if i < 0 {
				continue // \Recent, or an unknown system flag no client may set
			}
			s = string(systemFlags[i])
		}
		if store.ValidFlag(s) {
			out = append(out, s)
		}
	}
	return out
}

// hasFlag reports whether flags holds flag, ignoring case.
func hasFlag(flags []string, flag imap.Flag) bool {
	for _, f := range flags {
		if strings.EqualFold(f, string(flag)) {
			return true
		}
	}
	return false
}
