package imapd

import (
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// QUOTA (RFC 9208): clients can see how full a mailbox is before APPEND or COPY fails with
// NO [OVERQUOTA]. The quota comes from the Mailbox resource in Kubernetes, so it is read
// here and never set.

func init() {
	commands["GETQUOTA"] = handler{states: loggedIn, polls: true, run: (*session).cmdGetQuota}
	commands["GETQUOTAROOT"] = handler{states: loggedIn, polls: true, run: (*session).cmdGetQuotaRoot}
	commands["SETQUOTA"] = handler{states: loggedIn, polls: true, run: (*session).cmdSetQuota}
	// No QUOTA=RES-MESSAGE: the store counts messages cheaply (Mailbox.Count), but a Mailbox
	// has no limit on their number, and a QUOTA response cannot carry a usage without a limit.
	// No QUOTASET either: SETQUOTA is refused.
	extensionCaps = append(extensionCaps, "QUOTA", "QUOTA=RES-STORAGE")
}

// quotaRoot names the one quota root a mailbox has, shared by all its folders. RFC 9208's
// examples and mox use "", Dovecot "User quota"; the name carries no meaning for a client,
// and "" cannot be mistaken for a folder, which GETQUOTAROOT also names.
const quotaRoot = ""

// errNoQuotaRoot answers GETQUOTA for a root that does not exist: any but "", and "" for a
// mailbox without a quota (it has no root, see cmdGetQuotaRoot).
func errNoQuotaRoot(root string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
		Text: fmt.Sprintf("No quota root %q; GETQUOTAROOT INBOX names this mailbox's", clip(root, 40))}
}

// cmdGetQuotaRoot names the folder's quota roots and reports each. A mailbox without a quota
// is in no root: "* QUOTAROOT INBOX" alone, since a QUOTA response cannot say "unlimited"
// (Dovecot answers nothing at all, although RFC 9208 4.1.2 requires QUOTAROOT).
func (s *session) cmdGetQuotaRoot(_ string, args []wire.Value, _ bool) (reply, error) {
	name, err := s.mailboxArg("GETQUOTAROOT", args)
	if err != nil {
		return reply{}, err
	}
	f, err := s.folder(name, imap.ResponseCodeNonExistent)
	if err != nil {
		return reply{}, err
	}
	resp := []wire.Value{wire.Atom("QUOTAROOT"), s.mailboxValue(f.Name())}
	if s.user.Quota > 0 {
		resp = append(resp, wire.String(quotaRoot))
	}
	s.w.Untagged(resp...)
	if s.user.Quota > 0 {
		s.writeQuota()
	}
	return reply{}, nil
}

func (s *session) cmdGetQuota(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) != 1 {
		return reply{}, badArg("GETQUOTA takes a quota root name, such as \"\"")
	}
	root, ok := args[0].AString()
	if !ok {
		return reply{}, badArg("GETQUOTA takes the quota root name as a string")
	}
	if root != quotaRoot || s.user.Quota <= 0 {
		return reply{}, errNoQuotaRoot(root)
	}
	s.writeQuota()
	return reply{}, nil
}

// cmdSetQuota refuses: the quota is the Mailbox resource's spec.quota (or its MailDomain's
// defaultQuota), which a user must not raise. RFC 9208 lets a server without QUOTASET refuse;
// Dovecot answers the same way.
func (s *session) cmdSetQuota(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) != 2 || args[1].Kind != wire.KindList {
		return reply{}, badArg("SETQUOTA takes a quota root name and a list of limits, such as \"\" (STORAGE 1024)")
	}
	return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm,
		Text: "Quotas are set by the administrator on the Mailbox in Kubernetes (spec.quota), not over IMAP"}
}

// writeQuota writes the QUOTA response of the mailbox's root. STORAGE counts units of 1024
// octets (RFC 9208 5.1); both numbers round up, as Dovecot's do, so the usage shown never
// exceeds the limit shown unless the mailbox really is over it.
func (s *session) writeQuota() {
	kib := func(n int64) wire.Value { return wire.Number(uint64((max(n, 0) + 1023) / 1024)) }
	s.w.Untagged(wire.Atom("QUOTA"), wire.String(quotaRoot),
		wire.List(wire.Atom("STORAGE"), kib(s.box.Usage()), kib(s.user.Quota)))
}
