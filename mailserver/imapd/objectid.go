package imapd

import (
	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/store"
)

// OBJECTID (RFC 8474) and SAVEDATE (RFC 8514), from what the store keeps: a MAILBOXID per
// folder that survives renames, an EMAILID per message that its copies and moves keep, and the
// time a message was stored in its folder. Threads are not kept, so THREADID is NIL, as the RFC
// allows for a server without them.

func init() {
	extensionCaps = append(extensionCaps, "OBJECTID", "SAVEDATE")
}

// saveDateFilter is the SAVEDATE keys of a search as a test of a message: messages whose save
// date is unknown match only where RFC 8514 says (SAVEDATESUPPORTED is about the folder, which
// always supports it).
func (sa *searchArgs) saveDateFilter() func(store.Message) bool {
	if sa.SaveDateSince.IsZero() && sa.SaveDateBefore.IsZero() {
		return nil
	}
	return func(m store.Message) bool {
		sd := m.SaveDate()
		if sd.IsZero() {
			sd = m.InternalDate // RFC 8514 4: the internal date stands in for an unknown save date
		}
		return matchDate(sd, sa.SaveDateSince, sa.SaveDateBefore)
	}
}

// writeObjectItems writes FETCH's EMAILID, THREADID and SAVEDATE items.
func (s *session) writeObjectItems(fa *fetchArgs, m store.Message) {
	if fa.EmailID {
		s.w.Raw(" EMAILID (" + m.EmailID() + ")")
	}
	if fa.ThreadID {
		s.w.Raw(" THREADID NIL")
	}
	if fa.SaveDate {
		if sd := m.SaveDate(); sd.IsZero() {
			s.w.Raw(" SAVEDATE NIL")
		} else {
			s.w.Raw(" SAVEDATE ")
			s.w.Value(wire.String(sd.Format(internalDateLayout)))
		}
	}
}

// mailboxIDCode is the MAILBOXID response code's argument, "(id)".
func mailboxIDCode(f *store.Folder) []wire.Value {
	return []wire.Value{wire.List(wire.Atom(f.MailboxID()))}
}

// statusMailboxID appends STATUS's MAILBOXID item.
func statusMailboxID(items []wire.Value, f *store.Folder) []wire.Value {
	return append(items, wire.Atom("MAILBOXID"), wire.List(wire.Atom(f.MailboxID())))
}
