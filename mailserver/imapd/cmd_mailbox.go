package imapd

import (
	"bytes"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/store"
)

// Commands on folders as a whole: their arguments read, the work done by folders.go and
// list.go, the responses written here.

// utf8Names reports whether folder names travel as UTF-8 rather than modified UTF-7.
func (s *session) utf8Names() bool { return s.rev2 || s.utf8 }

// mailboxArg reads the one folder name a command takes.
func (s *session) mailboxArg(name string, args []wire.Value) (string, error) {
	if len(args) != 1 {
		return "", badArg("%s takes one folder name", name)
	}
	return parseMailbox(args[0], s.utf8Names())
}

// mailboxValue is a folder name as this client reads it.
func (s *session) mailboxValue(name string) wire.Value {
	return wire.AString(mailboxWireName(name, s.utf8Names()))
}

func (s *session) cmdSelect(_ string, args []wire.Value, _ bool) (reply, error) {
	return s.selectFolder(args, false)
}

func (s *session) cmdExamine(_ string, args []wire.Value, _ bool) (reply, error) {
	return s.selectFolder(args, true)
}

// selectFolder serves SELECT and EXAMINE. A failed SELECT leaves no folder selected (RFC
// 9051 6.3.2).
func (s *session) selectFolder(args []wire.Value, readOnly bool) (reply, error) {
	sa, err := parseSelectArgs(args, s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	if sa.QResync != nil && !s.qresync {
		return reply{}, badArg("QRESYNC parameter without ENABLE QRESYNC first (RFC 7162 3.2.5)")
	}
	s.condstore = s.condstore || sa.CondStore || sa.QResync != nil
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
		s.state = stateAuthenticated
		// RFC 7162 3.2.11 / RFC 9051 6.3.2: the previous folder's end is announced, so that a
		// client can tell its responses from the new one's; Dovecot always sends it.
		s.w.UntaggedStatus(wire.OK, "CLOSED", nil, "Previous folder closed")
	}
	data, err := s.Select(sa.Mailbox, &imap.SelectOptions{ReadOnly: readOnly, CondStore: sa.CondStore})
	if err != nil {
		return reply{}, err
	}
	s.state = stateSelected
	s.writeSelectData(sa.Mailbox, data)
	s.w.UntaggedStatus(wire.OK, "MAILBOXID", mailboxIDCode(s.sel.folder), "Ok")
	if s.condstore {
		s.w.UntaggedStatus(wire.OK, "HIGHESTMODSEQ", []wire.Value{wire.Number(max(s.sel.opened.HighestModSeq, 1))}, "Highest")
	}
	if sa.QResync != nil {
		s.resync(sa.QResync)
	}
	if readOnly {
		return reply{code: "READ-ONLY", text: "EXAMINE completed"}, nil
	}
	return reply{code: "READ-WRITE", text: "SELECT completed"}, nil
}

// writeSelectData writes SELECT's untagged responses (RFC 9051 6.3.2, and RFC 3501's RECENT
// and UNSEEN for IMAP4rev1 sessions).
func (s *session) writeSelectData(name string, d *imap.SelectData) {
	s.w.Untagged(wire.Atom("FLAGS"), imapFlagList(d.Flags))
	s.w.Untagged(wire.Number(uint64(d.NumMessages)), wire.Atom("EXISTS"))
	if !s.rev2 {
		s.w.Untagged(wire.Number(0), wire.Atom("RECENT"))
		if d.FirstUnseenSeqNum > 0 {
			s.w.UntaggedStatus(wire.OK, "UNSEEN", []wire.Value{wire.Number(uint64(d.FirstUnseenSeqNum))}, "First unseen")
		}
	}
	s.w.UntaggedStatus(wire.OK, "PERMANENTFLAGS", []wire.Value{imapFlagList(d.PermanentFlags)}, "Flags permitted")
	s.w.UntaggedStatus(wire.OK, "UIDVALIDITY", []wire.Value{wire.Number(uint64(d.UIDValidity))}, "UIDs valid")
	s.w.UntaggedStatus(wire.OK, "UIDNEXT", []wire.Value{wire.Number(uint64(d.UIDNext))}, "Predicted next UID")
	if s.rev2 {
		s.w.Untagged(wire.Atom("LIST"), wire.List(), wire.String(string(store.Delimiter)), s.mailboxValue(name))
	}
}

func imapFlagList(flags []imap.Flag) wire.Value {
	out := make([]wire.Value, len(flags))
	for i, f := range flags {
		out[i] = wire.Atom(string(f))
	}
	return wire.List(out...)
}

func (s *session) cmdCreate(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) < 1 || len(args) > 2 {
		return reply{}, badArg("CREATE takes a folder name and optional (USE (...))")
	}
	name, err := parseMailbox(args[0], s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	opts := &imap.CreateOptions{}
	if len(args) == 2 {
		if opts.SpecialUse, err = parseCreateUse(args[1]); err != nil {
			return reply{}, err
		}
	}
	if err := s.Create(name, opts); err != nil {
		return reply{}, err
	}
	// RFC 8474 4.1: the new folder's MAILBOXID, so the client needs no STATUS for it.
	f, err := s.box.Folder(store.CanonicalFolderName(strings.TrimSuffix(name, string(store.Delimiter))))
	if err != nil {
		return reply{}, nil
	}
	return reply{code: "MAILBOXID", args: mailboxIDCode(f), text: "CREATE completed"}, nil
}

// parseCreateUse reads CREATE's (USE (\Sent)) parameter (RFC 6154 3).
func parseCreateUse(v wire.Value) ([]imap.MailboxAttr, error) {
	l := v.List
	if v.Kind != wire.KindList || len(l) != 2 || l[0].Kind != wire.KindAtom || !strings.EqualFold(l[0].Str, "USE") || l[1].Kind != wire.KindList {
		return nil, badArg("CREATE's parameter is (USE (attributes))")
	}
	var out []imap.MailboxAttr
	for _, a := range l[1].List {
		if a.Kind != wire.KindAtom || !strings.HasPrefix(a.Str, `\`) {
			return nil, badArg("USE lists special-use attributes such as \\Sent")
		}
		out = append(out, imap.MailboxAttr(a.Str))
	}
	return out, nil
}

func (s *session) cmdDelete(_ string, args []wire.Value, _ bool) (reply, error) {
	name, err := s.mailboxArg("DELETE", args)
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.Delete(name)
}

func (s *session) cmdRename(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) != 2 {
		return reply{}, badArg("RENAME takes the folder's name and its new name")
	}
	from, err := parseMailbox(args[0], s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	to, err := parseMailbox(args[1], s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.Rename(from, to)
}

func (s *session) cmdSubscribe(_ string, args []wire.Value, _ bool) (reply, error) {
	name, err := s.mailboxArg("SUBSCRIBE", args)
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.Subscribe(name)
}

func (s *session) cmdUnsubscribe(_ string, args []wire.Value, _ bool) (reply, error) {
	name, err := s.mailboxArg("UNSUBSCRIBE", args)
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.Unsubscribe(name)
}

func (s *session) cmdNamespace(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("NAMESPACE", args); err != nil {
		return reply{}, err
	}
	personal := wire.List(wire.List(wire.String(""), wire.String(string(store.Delimiter))))
	s.w.Untagged(wire.Atom("NAMESPACE"), personal, wire.NIL(), wire.NIL())
	return reply{}, nil
}

func (s *session) cmdList(_ string, args []wire.Value, _ bool) (reply, error) {
	la, err := parseListArgs(args, s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	list, err := s.List(la.Ref, la.Patterns, &la.Options)
	if err != nil {
		return reply{}, err
	}
	for _, d := range list {
		s.writeList("LIST", d)
		if d.Status != nil {
			s.writeStatus(d.Status, la.Options.ReturnStatus, la.ReturnMailboxID)
		}
	}
	return reply{}, nil
}

// cmdLsub is RFC 3501's LSUB, which IMAP4rev2 keeps for old clients: the subscribed names
// (whether their folder exists or not), with no attributes, and, where "%" stops above a
// subscribed name, its unsubscribed parent as \Noselect (RFC 3501 6.3.9), as Dovecot answers.
func (s *session) cmdLsub(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) != 2 {
		return reply{}, badArg("LSUB takes a reference and a pattern")
	}
	la, err := parseListArgs(args, s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	la.Options = imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true}
	list, err := s.List(la.Ref, la.Patterns, &la.Options)
	if err != nil {
		return reply{}, err
	}
	for _, d := range list {
		subscribed := hasAttr(d.Attrs, imap.MailboxAttrSubscribed)
		d.Attrs, d.ChildInfo = nil, nil
		if !subscribed {
			d.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
		}
		s.writeList("LSUB", d)
	}
	return reply{}, nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// writeList writes one LIST or LSUB response.
func (s *session) writeList(kind string, d *imap.ListData) {
	attrs := make([]wire.Value, len(d.Attrs))
	for i, a := range d.Attrs {
		attrs[i] = wire.Atom(string(a))
	}
	vals := []wire.Value{wire.Atom(kind), wire.List(attrs...), wire.String(string(store.Delimiter))}
	if d.Mailbox == "" {
		vals = append(vals, wire.String(""))
	} else {
		vals = append(vals, s.mailboxValue(d.Mailbox))
	}
	if d.ChildInfo != nil && d.ChildInfo.Subscribed {
		vals = append(vals, wire.List(wire.String("CHILDINFO"), wire.List(wire.String("SUBSCRIBED"))))
	}
	s.w.Untagged(vals...)
}

func (s *session) cmdStatus(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) != 2 {
		return reply{}, badArg("STATUS takes a folder name and a list of items")
	}
	name, err := parseMailbox(args[0], s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	items, err := parseStatusItems(args[1])
	if err != nil {
		return reply{}, err
	}
	s.useCondStore(items.HighestModSeq)
	data, err := s.Status(name, &items.StatusOptions)
	if err != nil {
		return reply{}, err
	}
	s.writeStatus(data, &items.StatusOptions, items.MailboxID)
	if s.sel != nil && s.sel.folder.Name() == data.Mailbox {
		// RFC 9051 6.3.11: clients SHOULD NOT ask this, as the answer may run ahead of the
		// session's untagged responses. It is answered, and CLIENTBUG (RFC 5530) says so, as
		// Dovecot does, for the client's developer to see in a log.
		return reply{code: "CLIENTBUG", text: "STATUS of the selected folder; its changes come as untagged responses"}, nil
	}
	return reply{}, nil
}

// writeStatus writes a STATUS response with the items asked for, in RFC 9051's order.
func (s *session) writeStatus(d *imap.StatusData, o *imap.StatusOptions, mailboxID bool) {
	var items []wire.Value
	num := func(name string, n uint64) { items = append(items, wire.Atom(name), wire.Number(n)) }
	if o.NumMessages && d.NumMessages != nil {
		num("MESSAGES", uint64(*d.NumMessages))
	}
	if o.NumRecent && d.NumRecent != nil {
		num("RECENT", uint64(*d.NumRecent))
	}
	if o.UIDNext {
		num("UIDNEXT", uint64(d.UIDNext))
	}
	if o.UIDValidity {
		num("UIDVALIDITY", uint64(d.UIDValidity))
	}
	if o.NumUnseen && d.NumUnseen != nil {
		num("UNSEEN", uint64(*d.NumUnseen))
	}
	if o.NumDeleted && d.NumDeleted != nil {
		num("DELETED", uint64(*d.NumDeleted))
	}
	if o.Size && d.Size != nil {
		num("SIZE", uint64(*d.Size))
	}
	if o.AppendLimit && d.AppendLimit != nil {
		num("APPENDLIMIT", uint64(*d.AppendLimit))
	}
	if o.DeletedStorage && d.DeletedStorage != nil {
		num("DELETED-STORAGE", uint64(*d.DeletedStorage))
	}
	if o.HighestModSeq {
		// An untouched folder is at 1, never 0 (RFC 7162 3.1.2.1), as Dovecot answers.
		num("HIGHESTMODSEQ", max(d.HighestModSeq, 1))
	}
	if mailboxID {
		if f, err := s.box.Folder(d.Mailbox); err == nil {
			items = statusMailboxID(items, f)
		}
	}
	s.w.Untagged(wire.Atom("STATUS"), s.mailboxValue(d.Mailbox), wire.List(items...))
}

// cmdAppend stores one message, or several (MULTIAPPEND, RFC 3502): all of them or none.
func (s *session) cmdAppend(_ string, args []wire.Value, _ bool) (reply, error) {
	aa, err := parseAppendArgs(args, s.utf8Names())
	if err != nil {
		return reply{}, err
	}
	f, err := s.folder(aa.Mailbox, imap.ResponseCodeTryCreate)
	if err != nil {
		return reply{}, err
	}
	var total int64
	for i, m := range aa.Messages {
		if len(m.Parts) > 0 {
			data, err := s.catenate(m.Parts)
			var ue *urlError
			if errors.As(err, &ue) {
				return reply{}, badURL(ue)
			}
			if err != nil {
				return reply{}, err
			}
			aa.Messages[i].Data = data
		}
		total += int64(len(aa.Messages[i].Data))
	}
	if err := s.checkQuota(total); err != nil {
		return reply{}, err
	}
	var uids imap.UIDSet
	var stored []uint32
	for _, m := range aa.Messages {
		uid, err := s.appendOne(f, m)
		if err != nil {
			if _, rerr := f.Expunge(stored); rerr != nil {
				s.log.Error("removing a failed MULTIAPPEND's messages", "folder", f.Name(), "err", rerr)
			}
			return reply{}, err
		}
		stored = append(stored, uid)
		uids.AddNum(imap.UID(uid))
	}
	uidValidity := f.UIDValidity()
	return reply{code: "APPENDUID", args: []wire.Value{wire.Number(uint64(uidValidity)), wire.Atom(uids.String())},
		text: "APPEND completed"}, nil
}

// appendOne stores one APPENDed message and returns its UID.
func (s *session) appendOne(f *store.Folder, m appendMessage) (uint32, error) {
	if len(m.Data) == 0 {
		return 0, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Empty message: nothing to store"}
	}
	add := f.Append
	if m.Binary {
		add = f.AppendExact // RFC 3516: bare LF and NUL stay as sent
	}
	msg, err := add(bytes.NewReader(m.Data), storeFlags(m.Flags), m.Time)
	if err != nil {
		return 0, s.storageError("appending a message", err)
	}
	return msg.UID, nil
}
