package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// listFolders answers LIST and LSUB (without STATUS, which needs the folders themselves):
// which names match, and their attributes. folders is the store's listing (INBOX first,
// then by name); subs the subscribed names.
//
//   - Every existing folder gets \HasChildren or \HasNoChildren (CHILDREN) and its special-use
//     attribute, asked for or not, since clients find Sent and Trash by them.
//   - A level that only exists because a sub-folder does ("a" for "a/b") is listed as
//     \Noselect \HasChildren, so "%" walks the tree (RFC 3501 6.3.8).
//   - SUBSCRIBED selects subscribed names, marking those without a folder \NonExistent;
//     RECURSIVEMATCH adds parents of subscribed names with CHILDINFO (RFC 5258).
//   - SPECIAL-USE selects folders that have a special-use attribute (RFC 6154).
func listFolders(folders []store.FolderInfo, subs []string, ref string, patterns []string, options *imap.ListOptions) []*imap.ListData {
	const delim = string(store.Delimiter)
	exists := map[string]store.FolderInfo{}
	var paths []string
	for _, fi := range folders {
		exists[fi.Name] = fi
		paths = append(paths, fi.Name)
	}
	subscribed := map[string]bool{}
	for _, s := range subs {
		subscribed[s] = true
	}
	if options.SelectSubscribed {
		paths = append(paths, subs...)
	}
	names := withParents(paths)

	// descendants reports whether some name below parent is a folder, or a subscription.
	descendants := func(parent string, pick func(string) bool) bool {
		prefix := parent + delim
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && pick(n) {
				return true
			}
		}
		return false
	}
	isFolder := func(n string) bool { _, ok := exists[n]; return ok }

	ref = canonicalPattern(ref)
	patterns = slices.Clone(patterns)
	for i := range patterns {
		patterns[i] = canonicalPattern(patterns[i])
	}
	matches := func(name string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool {
			return matchList(name, store.Delimiter, ref, p)
		})
	}
	// RECURSIVEMATCH reports subscriptions the pattern does not reach on their parents.
	unreachedSubscription := func(n string) bool { return subscribed[n] && !matches(n) }

	var out []*imap.ListData
	for _, name := range names {
		if !matches(name) {
			continue
		}
		fi, ok := exists[name]
		hasChildren := descendants(name, isFolder)
		d := &imap.ListData{Mailbox: name, Delim: store.Delimiter}
		switch {
		case ok && fi.SpecialUse != "":
			d.Attrs = append(d.Attrs, imap.MailboxAttr(fi.SpecialUse))
		case !ok && hasChildren:
			d.Attrs = append(d.Attrs, imap.MailboxAttrNoSelect)
		case !ok:
			d.Attrs = append(d.Attrs, imap.MailboxAttrNonExistent)
		}
		if hasChildren {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
		} else if ok {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if options.SelectSpecialUse && (!ok || fi.SpecialUse == "") {
			continue
		}
		if options.SelectSubscribed {
			if options.SelectRecursiveMatch && descendants(name, unreachedSubscription) {
				d.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
			} else if !subscribed[name] {
				continue
			}
		} else if !ok && !hasChildren {
			continue // a subscription without a folder; only SUBSCRIBED lists those
		}
		if subscribed[name] && (options.SelectSubscribed || options.ReturnSubscribed) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		out = append(out, d)
	}
	return out
}

// withParents is every name in paths and every level above it, once each, sorted for LIST.
func withParents(paths []string) []string {
	const delim = string(store.Delimiter)
	var names []string
	listed := map[string]bool{}
	for _, p := range paths {
		levels := strings.Split(p, delim)
		for i := 1; i <= len(levels); i++ {
			if name := strings.Join(levels[:i], delim); !listed[name] {
				listed[name] = true
				names = append(names, name)
			}
		}
	}
	slices.SortFunc(names, compareFolderNames)
	return names
}

// canonicalPattern spells a leading INBOX level in capitals: INBOX matches in any case.
func canonicalPattern(p string) string {
	if len(p) >= 5 && strings.EqualFold(p[:5], "INBOX") && (len(p) == 5 || p[5] == store.Delimiter) {
		return "INBOX" + p[5:]
	}
	return p
}

// compareFolderNames orders INBOX and its sub-folders first, then by name.
func compareFolderNames(a, b string) int {
	ai, bi := a == "INBOX" || strings.HasPrefix(a, "INBOX/"), b == "INBOX" || strings.HasPrefix(b, "INBOX/")
	switch {
	case ai && !bi:
		return -1
	case bi && !ai:
		return 1
	}
	return strings.Compare(a, b)
}
