package imapd

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// Folder names arrive decoded by the library: modified UTF-7 from IMAP4rev1 clients and UTF-8
// from IMAP4rev2/UTF8=ACCEPT ones both become UTF-8, and names go out encoded the way each
// client reads them. What is left here is refusing names that could escape the mailbox.

// folderName checks a client's folder name and puts INBOX in canonical case.
func folderName(name string) (string, error) {
	if err := store.ValidateFolderName(name); err != nil {
		return "", folderError(name, err)
	}
	return store.CanonicalFolderName(name), nil
}

// folderError turns a store error about the folder name into the client's answer.
func folderError(name string, err error) error {
	var (
		code imap.ResponseCode
		text string
	)
	switch {
	case errors.Is(err, store.ErrBadFolderName):
		// %+q keeps control characters and non-ASCII out of the response line.
		code, text = imap.ResponseCodeCannot, fmt.Sprintf("Folder name %+q refused: %v", name, err)
	case errors.Is(err, store.ErrNoSuchFolder):
		code, text = imap.ResponseCodeNonExistent, fmt.Sprintf("No folder named %+q", name)
	case errors.Is(err, store.ErrFolderExists):
		code, text = imap.ResponseCodeAlreadyExists, fmt.Sprintf("Folder %+q already exists", name)
	case errors.Is(err, store.ErrInboxProtected):
		code, text = imap.ResponseCodeCannot, "INBOX cannot be deleted, and no folder can be renamed to INBOX"
	default:
		return nil
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

// folderFailure answers a failed folder operation: the client's mistake in its own words, a
// storage failure logged and hidden.
func (s *session) folderFailure(what, name string, err error) error {
	if e := folderError(name, err); e != nil {
		return e
	}
	return s.storageError(what, err)
}

// folder returns an existing folder; missing ones get code (NONEXISTENT, or TRYCREATE where a
// client may create the target and retry).
func (s *session) folder(name string, missing imap.ResponseCode) (*store.Folder, error) {
	name, err := folderName(name)
	if err != nil {
		return nil, err
	}
	f, err := s.box.Folder(name)
	if errors.Is(err, store.ErrNoSuchFolder) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: missing, Text: fmt.Sprintf("No folder named %+q", name)}
	}
	return f, err
}

func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	f, err := s.folder(name, imap.ResponseCodeNonExistent)
	if err != nil {
		return nil, err
	}
	sel, msgs, st := openSelection(f, options.ReadOnly)
	s.sel = sel

	sel.mu.Lock()
	names := sel.flagNames() // the keywords the selection gathered from msgs
	sel.mu.Unlock()
	flags := make([]imap.Flag, len(names))
	for i, n := range names {
		flags[i] = imap.Flag(n)
	}
	data := &imap.SelectData{
		Flags:       flags,
		NumMessages: uint32(len(msgs)),
		UIDNext:     imap.UID(st.UIDNext),
		UIDValidity: st.UIDValidity,
	}
	if !options.ReadOnly {
		data.PermanentFlags = append(slices.Clone(data.Flags), imap.FlagWildcard)
	}
	for i, m := range msgs {
		if !hasFlag(m.Flags, imap.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	return data, nil
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	// A trailing delimiter only says the client means to create folders below it.
	name, err := folderName(strings.TrimSuffix(name, string(store.Delimiter)))
	if err != nil {
		return err
	}
	if len(options.SpecialUse) > 0 {
		// The store derives special use from the name (Sent is \Sent) and keeps no other, so
		// CREATE can only ask for the attribute the name already brings, e.g. to re-create a
		// deleted Sent folder.
		want := store.StandardSpecialUse(name)
		if len(options.SpecialUse) != 1 || want == "" || !strings.EqualFold(string(options.SpecialUse[0]), want) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR",
				Text: `Special use follows the folder name here (Sent, Drafts, Trash, Junk, Archive); create the folder without USE`}
		}
	}
	if err := s.createParents(name); err != nil {
		return err
	}
	if _, err := s.box.CreateFolder(name); err != nil {
		return s.folderFailure("creating folder", name, err)
	}
	return nil
}

// createParents creates the superior levels name needs (RFC 3501 6.3.3, 6.3.5).
func (s *session) createParents(name string) error {
	levels := strings.Split(name, string(store.Delimiter))
	for i := 1; i < len(levels); i++ {
		parent := strings.Join(levels[:i], string(store.Delimiter))
		if _, err := s.box.CreateFolder(parent); err != nil && !errors.Is(err, store.ErrFolderExists) {
			return s.folderFailure("creating folder", parent, err)
		}
	}
	return nil
}

func (s *session) Delete(name string) error {
	name, err := folderName(name)
	if err != nil {
		return err
	}
	// Sub-folders stay (RFC 3501 6.3.4); the deleted level then lists as \Noselect.
	if err := s.box.DeleteFolder(name); err != nil {
		return s.folderFailure("deleting folder", name, err)
	}
	return nil
}

func (s *session) Rename(from, to string) error {
	from, err := folderName(from)
	if err != nil {
		return err
	}
	if to, err = folderName(strings.TrimSuffix(to, string(store.Delimiter))); err != nil {
		return err
	}
	if _, err := s.box.Folder(from); err != nil {
		return s.folderFailure("renaming folder", from, err)
	}
	if strings.HasPrefix(to, from+string(store.Delimiter)) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: fmt.Sprintf("Cannot move %+q into itself", from)}
	}
	if err := s.createParents(to); err != nil {
		return err
	}
	if from == "INBOX" {
		return s.renameInbox(to)
	}
	if err := s.box.RenameFolder(from, to); err != nil {
		if errors.Is(err, store.ErrFolderExists) {
			return s.folderFailure("renaming folder", to, err)
		}
		return s.folderFailure("renaming folder", from, err)
	}
	if err := s.box.RenameSubscriptions(from, to); err != nil {
		s.log.Error("moving subscriptions of a renamed folder", "err", err)
	}
	return nil
}

// renameInbox moves INBOX's messages to a new folder and leaves INBOX empty (RFC 3501 6.3.5).
func (s *session) renameInbox(to string) error {
	dst, err := s.box.CreateFolder(to)
	if err != nil {
		return s.folderFailure("creating folder", to, err)
	}
	inbox := s.box.Inbox()
	msgs, _ := inbox.Messages()
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	src, _, err := inbox.CopyTo(dst, uids)
	if err != nil {
		return s.storageError("moving INBOX's messages", err)
	}
	if _, err := inbox.Expunge(src); err != nil {
		return s.storageError("moving INBOX's messages", err)
	}
	return nil
}

func (s *session) Subscribe(name string) error {
	if _, err := s.folder(name, imap.ResponseCodeNonExistent); err != nil {
		return err
	}
	if err := s.box.Subscribe(name); err != nil {
		return s.folderFailure("subscribing", name, err)
	}
	return nil
}

func (s *session) Unsubscribe(name string) error {
	if err := s.box.Unsubscribe(name); err != nil {
		return s.folderFailure("unsubscribing", name, err)
	}
	return nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.folder(name, imap.ResponseCodeNonExistent)
	if err != nil {
		return nil, err
	}
	return s.status(f, options), nil
}

// status answers STATUS and LIST RETURN (STATUS): every item asked for gets a value.
func (s *session) status(f *store.Folder, options *imap.StatusOptions) *imap.StatusData {
	st := f.Status()
	data := &imap.StatusData{Mailbox: f.Name()}
	num := func(n int) *uint32 { v := uint32(n); return &v }
	// Only the items asked for: STATUS (DELETED) is one number, not three.
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumMessages {
		data.NumMessages = num(st.Messages)
	}
	if options.NumUnseen {
		data.NumUnseen = num(st.Unseen)
	}
	if options.NumRecent {
		data.NumRecent = num(0) // \Recent is never set
	}
	if options.Size {
		size := st.Size
		data.Size = &size
	}
	if options.HighestModSeq {
		data.HighestModSeq = st.HighestModSeq
	}
	if options.AppendLimit {
		limit := s.srv.appendLimit()
		data.AppendLimit = &limit
	}
	if options.NumDeleted || options.DeletedStorage {
		msgs, _ := f.Messages()
		var n int
		var size int64
		for _, m := range msgs {
			if hasFlag(m.Flags, imap.FlagDeleted) {
				n++
				size += m.Size
			}
		}
		data.NumDeleted, data.DeletedStorage = num(n), &size
	}
	return data
}

func (s *session) List(ref string, patterns []string, options *imap.ListOptions) ([]*imap.ListData, error) {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		// LIST "" "": the hierarchy delimiter and root.
		return []*imap.ListData{{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: store.Delimiter}}, nil
	}
	subs, err := s.box.Subscriptions()
	if err != nil {
		return nil, s.storageError("reading subscriptions", err)
	}
	list := listFolders(s.box.Folders(), subs, ref, patterns, options)
	for _, d := range list {
		if options.ReturnStatus != nil && !slices.Contains(d.Attrs, imap.MailboxAttrNoSelect) &&
			!slices.Contains(d.Attrs, imap.MailboxAttrNonExistent) {
			if f, err := s.box.Folder(d.Mailbox); err == nil {
				d.Status = s.status(f, options.ReturnStatus)
			}
		}
	}
	return list, nil
}
