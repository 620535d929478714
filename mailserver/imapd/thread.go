package imapd

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// THREAD (RFC 5256 4-5): the messages SEARCH would find, grouped into conversations by
// ORDEREDSUBJECT (same base subject) or REFERENCES (Message-ID, References and In-Reply-To,
// then subject). Like SORT it reads only the header cache.

func init() {
	commands["THREAD"] = handler{states: stateSelected, uid: true, polls: true, noExpunge: true, run: (*session).cmdThread}
	extensionCaps = append(extensionCaps, "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")
}

// threadAlgorithms are the algorithms THREAD offers, with the header fields each reads.
var threadAlgorithms = map[string]fieldSet{
	"ORDEREDSUBJECT": fieldSubject | fieldDate,
	"REFERENCES":     fieldSubject | fieldDate | fieldMessageID | fieldReferences | fieldInReplyTo,
}

// parseThreadArgs reads algorithm charset search-keys...
func parseThreadArgs(args []wire.Value, uid bool) (string, *searchArgs, error) {
	cmd := commandName("THREAD", uid)
	r := newArgList(cmd, args)
	v, err := r.next("the threading algorithm, ORDEREDSUBJECT or REFERENCES")
	if err != nil {
		return "", nil, err
	}
	alg := ""
	if v.Kind == wire.KindAtom {
		alg = strings.ToUpper(v.Str)
	}
	if _, ok := threadAlgorithms[alg]; !ok {
		return "", nil, badArg("%s: unknown threading algorithm %s: expected ORDEREDSUBJECT or REFERENCES", cmd, describeValue(v))
	}
	sa := &searchArgs{Criteria: &imap.SearchCriteria{}}
	if err := readCharsetAndKeys(cmd, args[1:], sa); err != nil {
		return "", nil, err
	}
	return alg, sa, nil
}

func (s *session) cmdThread(_ string, args []wire.Value, uid bool) (reply, error) {
	alg, sa, err := parseThreadArgs(args, uid)
	if err != nil {
		return reply{}, err
	}
	msgs := loadSortMsgs(s.matches(sa.Criteria, sa.saveDateFilter()), threadAlgorithms[alg])
	var threads []*threadNode
	if alg == "ORDEREDSUBJECT" {
		threads = threadBySubject(msgs)
	} else {
		threads = threadByReferences(msgs)
	}
	var b strings.Builder
	for _, t := range threads {
		b.WriteByte('(')
		writeThread(&b, t, uid)
		b.WriteByte(')')
	}
	// RFC 5256 5: "THREAD" [SP 1*thread-list]; Dovecot sends "THREAD " when nothing matched.
	if b.Len() == 0 {
		s.w.Untagged(wire.Atom("THREAD"))
	} else {
		s.w.Untagged(wire.Atom("THREAD"), wire.Atom(b.String()))
	}
	return reply{}, nil
}

// threadNode is a message in a thread, or a dummy standing for one that is not in the
// result (a message referred to but missing, or a subject's common parent).
type threadNode struct {
	msg      *threadMsg // nil for a dummy
	parent   *threadNode
	children []*threadNode
}

// threadMsg is a message with what threading compares it by.
type threadMsg struct {
	*sortMsg
	sent       time.Time
	subject    string // collation key of the base subject
	replyOrFwd bool
}

func newThreadMsgs(msgs []*sortMsg) []*threadMsg {
	out := make([]*threadMsg, len(msgs))
	for i, m := range msgs {
		base, reply := baseSubject(m.fields[fieldIndexSubject])
		out[i] = &threadMsg{sortMsg: m, sent: m.sentDate(), subject: collationKey(base), replyOrFwd: reply}
	}
	return out
}

// writeThread writes a thread-list's content (RFC 5256 5): a message followed by its only
// child as "1 2", or by several children as "1 (2)(3)"; a dummy by its children alone.
func writeThread(b *strings.Builder, n *threadNode, uid bool) {
	sep := ""
	for {
		if n.msg != nil {
			b.WriteString(sep)
			b.WriteString(strconv.FormatUint(uint64(n.msg.number(uid)), 10))
			sep = " "
		}
		if len(n.children) != 1 {
			break
		}
		n = n.children[0]
	}
	if len(n.children) == 0 {
		return
	}
	b.WriteString(sep)
	for _, c := range n.children {
		b.WriteByte('(')
		writeThread(b, c, uid)
		b.WriteByte(')')
	}
}

// threadBySubject is ORDEREDSUBJECT: messages with the same base subject form a thread, in
// order of sent date, the first at the top and the others its children; threads are ordered
// by the date of their first message.
func threadBySubject(sorted []*sortMsg) []*threadNode {
	msgs := newThreadMsgs(sorted)
	slices.SortFunc(msgs, func(a, b *threadMsg) int {
		if c := strings.Compare(a.subject, b.subject); c != 0 {
			return c
		}
		return compareSent(a, b)
	})
	var threads []*threadNode
	for i := 0; i < len(msgs); {
		root := &threadNode{msg: msgs[i]}
		j := i + 1
		for ; j < len(msgs) && msgs[j].subject == msgs[i].subject; j++ {
			root.children = append(root.children, &threadNode{msg: msgs[j], parent: root})
		}
		threads = append(threads, root)
		i = j
	}
	slices.SortStableFunc(threads, func(a, b *threadNode) int { return compareSent(a.msg, b.msg) })
	return threads
}

// compareSent orders messages by sent date, then by their order in the mailbox (RFC 5256
// 2.2).
func compareSent(a, b *threadMsg) int {
	if c := a.sent.Compare(b.sent); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// first is the message a node is dated and named by: its own, or a dummy's first child's
// (RFC 5256 4, REFERENCES steps 4, 5B and 6).
func (n *threadNode) first() *threadMsg {
	for n.msg == nil {
		n = n.children[0]
	}
	return n.msg
}

// sortThreadNodes orders siblings by the sent date of their first message.
func sortThreadNodes(nodes []*threadNode) {
	slices.SortFunc(nodes, func(a, b *threadNode) int { return compareSent(a.first(), b.first()) })
}

// threadByReferences is RFC 5256's REFERENCES algorithm: messages are linked to their
// parents by References (or In-Reply-To), missing parents become dummies, dummies that hold
// nothing together are pruned, top-level threads with the same base subject are merged, and
// every set of siblings is ordered by sent date.
func threadByReferences(sorted []*sortMsg) []*threadNode {
	root := &threadNode{}
	for _, n := range linkByReferences(newThreadMsgs(sorted)) {
		if n.parent == nil {
			root.children = append(root.children, n)
		}
	}
	root.children = pruneDummies(root.children, true)
	for _, n := range root.children {
		if n.msg == nil {
			sortThreadNodes(n.children) // step 4: a dummy is dated by its first child
		}
	}
	sortThreadNodes(root.children)
	root.children = mergeBySubject(root.children)
	sortThreadTree(root)
	return root.children
}

// linkByReferences is step 1: a node for every message and every Message-ID referred to,
// linked parent to child as the messages' References say. It returns every node.
func linkByReferences(msgs []*threadMsg) []*threadNode {
	byID := map[string]*threadNode{}
	var all []*threadNode
	node := func(id string) *threadNode {
		n := byID[id]
		if n == nil {
			n = &threadNode{}
			byID[id] = n
			all = append(all, n)
		}
		return n
	}
	for _, m := range msgs {
		// (A) A message without a Message-ID, or with one an earlier message has, is a
		// thread of its own as far as its ID goes.
		id := firstMessageID(m.fields[fieldIndexMessageID])
		var n *threadNode
		if id != "" && (byID[id] == nil || byID[id].msg == nil) {
			n = node(id)
		} else {
			n = &threadNode{}
			all = append(all, n)
		}
		n.msg = m
		refs := messageIDs(m.fields[fieldIndexReferences])
		if len(refs) == 0 {
			if irt := firstMessageID(m.fields[fieldIndexInReplyTo]); irt != "" {
				refs = []string{irt}
			}
		}
		// (B) Link the references in order, keeping links already made.
		var prev *threadNode
		for _, ref := range refs {
			r := node(ref)
			if prev != nil && r.parent == nil && !r.isAncestorOf(prev) {
				r.setParent(prev)
			}
			prev = r
		}
		// (C) The last reference is the parent, replacing a guess made from another
		// message's References; none, and the message is at the top.
		if prev == nil || !n.isAncestorOf(prev) {
			n.setParent(prev)
		}
	}
	return all
}

// isAncestorOf reports whether n is m or above it: linking m as n's parent would make a loop.
func (n *threadNode) isAncestorOf(m *threadNode) bool {
	for ; m != nil; m = m.parent {
		if m == n {
			return true
		}
	}
	return false
}

// setParent moves n under parent, or to the top for nil.
func (n *threadNode) setParent(parent *threadNode) {
	if n.parent == parent {
		return
	}
	if old := n.parent; old != nil {
		old.children = slices.DeleteFunc(old.children, func(c *threadNode) bool { return c == n })
	}
	n.parent = parent
	if parent != nil {
		parent.children = append(parent.children, n)
	}
}

// pruneDummies is step 3: a dummy without children goes, one with children gives them to its
// own parent, except at the top, where only a dummy with a single child does: two top-level
// messages with a common missing parent stay one thread.
func pruneDummies(nodes []*threadNode, top bool) []*threadNode {
	var out []*threadNode
	for _, n := range nodes {
		n.children = pruneDummies(n.children, false)
		if n.msg != nil || (top && len(n.children) > 1) {
			out = append(out, n)
			continue
		}
		for _, c := range n.children {
			c.parent = n.parent
		}
		out = append(out, n.children...)
	}
	return out
}

// mergeBySubject is step 5: top-level threads with the same base subject become one, the
// original message at the top and replies and forwards under it. top is in step 4's order,
// which decides which thread the others join.
func mergeBySubject(top []*threadNode) []*threadNode {
	// (A)-(E) For each subject, the thread the others will join: a dummy if there is one,
	// else the first that is not a reply or forward, else the first.
	table := map[string]int{} // subject to index in top
	for i, n := range top {
		first := n.first()
		if first.subject == "" {
			continue
		}
		j, ok := table[first.subject]
		if !ok {
			table[first.subject] = i
			continue
		}
		held := top[j]
		if held.msg != nil && (n.msg == nil || (held.msg.replyOrFwd && !first.replyOrFwd)) {
			table[first.subject] = i
		}
	}
	// (F)-(J) Merge every other thread with that subject into it.
	for i, n := range top {
		if n == nil || n.first().subject == "" {
			continue
		}
		j := table[n.first().subject]
		if j == i {
			continue
		}
		top[j] = mergeThreads(top[j], n)
		top[i] = nil
	}
	return slices.DeleteFunc(top, func(n *threadNode) bool { return n == nil })
}

// mergeThreads puts thread n together with held, the thread of its subject, and returns what
// takes held's place at the top (step 5J).
func mergeThreads(held, n *threadNode) *threadNode {
	switch {
	case held.msg == nil && n.msg == nil:
		for _, c := range n.children {
			c.parent = held
		}
		held.children = append(held.children, n.children...)
		return held
	case held.msg == nil, n.msg != nil && n.msg.replyOrFwd && !held.msg.replyOrFwd:
		n.parent = held
		held.children = append(held.children, n)
		return held
	}
	dummy := &threadNode{children: []*threadNode{held, n}}
	held.parent, n.parent = dummy, dummy
	return dummy
}

// sortThreadTree is step 6: every set of siblings ordered by sent date, the deepest first so
// that a dummy is dated by its earliest child.
func sortThreadTree(n *threadNode) {
	for _, c := range n.children {
		sortThreadTree(c)
	}
	sortThreadNodes(n.children)
}

// messageIDs returns the msg-ids ("<left@right>") in a References or In-Reply-To field, in
// order, without their angle brackets; anything else in the field (comments, phrases,
// broken IDs) is skipped.
func messageIDs(field string) []string {
	var ids []string
	for {
		id, rest := nextMessageID(field)
		if id == "" {
			return ids
		}
		ids = append(ids, id)
		field = rest
	}
}

// firstMessageID is the first msg-id in a field, "" for none.
func firstMessageID(field string) string {
	id, _ := nextMessageID(field)
	return id
}

// nextMessageID finds the next msg-id in s. An ID is what lies between "<" and ">" when it
// has an "@" and no white space, as RFC 5322 msg-ids always do; IDs compare as bytes.
func nextMessageID(s string) (id, rest string) {
	for {
		open := strings.IndexByte(s, '<')
		if open < 0 {
			return "", ""
		}
		s = s[open+1:]
		end := strings.IndexAny(s, "<>")
		if end < 0 {
			return "", ""
		}
		if s[end] == '>' {
			candidate := s[:end]
			if strings.Contains(candidate, "@") && !strings.ContainsAny(candidate, " \t\r\n") {
				return candidate, s[end+1:]
			}
		}
		s = s[end:]
		if s[0] == '>' {
			s = s[1:]
		}
	}
}
