package imapd

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// fetchArgs is what a FETCH or UID FETCH asks for, after its sequence set.
type fetchArgs struct {
	Options      *imap.FetchOptions // Options.ModSeq is set for MODSEQ or CHANGEDSINCE
	ChangedSince uint64             // CHANGEDSINCE modifier (RFC 7162); 0 for none
	Vanished     bool               // VANISHED modifier (QRESYNC, UID FETCH only)

	// Body is set when BODY (without a section) was asked: it is answered with the
	// non-extensible body structure, also when BODYSTRUCTURE was asked too.
	Body bool

	// The legacy RFC822 items are answered under the name the client used; Legacy maps each
	// section they stand for in Options.BodySection to that name.
	RFC822, RFC822Header, RFC822Text bool
	Legacy                           map[*imap.FetchItemBodySection]string

	SaveDate bool // SAVEDATE (RFC 8514)
	EmailID  bool // EMAILID (RFC 8474)
	ThreadID bool // THREADID (RFC 8474)
}

// parseFetchArgs reads the items of FETCH, after the sequence set: one item, a list of them,
// or a macro, then optional modifiers (CHANGEDSINCE n VANISHED).
func parseFetchArgs(args []wire.Value, uid bool) (*fetchArgs, error) {
	a := newArgList(commandName("FETCH", uid), args)
	items, err := a.next("the items to fetch")
	if err != nil {
		return nil, err
	}
	fa := &fetchArgs{Options: &imap.FetchOptions{UID: uid}}
	if err := fa.readItems(items); err != nil {
		return nil, a.wrap(err)
	}
	if mods, ok := a.peek(); ok {
		a.next("")
		if err := fa.readModifiers(mods, uid); err != nil {
			return nil, a.wrap(err)
		}
	}
	return fa, a.end()
}

func (fa *fetchArgs) readItems(items wire.Value) error {
	if items.Kind == wire.KindList {
		if len(items.List) == 0 {
			return badArg("empty list of items")
		}
		for _, item := range items.List {
			name, err := fetchItemName(item)
			if err != nil {
				return err
			}
			if name == "ALL" || name == "FAST" || name == "FULL" {
				return badArg("the macro %s cannot be part of a list", name)
			}
			if err := fa.addItem(name, item.Str); err != nil {
				return err
			}
		}
		return nil
	}
	name, err := fetchItemName(items)
	if err != nil {
		return err
	}
	o := fa.Options
	switch name {
	case "FULL":
		o.BodyStructure, fa.Body = &imap.FetchItemBodyStructure{}, true
		fallthrough
	case "ALL":
		o.Envelope = true
		fallthrough
	case "FAST":
		o.Flags, o.InternalDate, o.RFC822Size = true, true, true
		return nil
	}
	return fa.addItem(name, items.Str)
}

// fetchItemName returns the name of an item, upper-cased, without its section and partial.
func fetchItemName(v wire.Value) (string, error) {
	if v.Kind != wire.KindAtom {
		return "", badArg("expected a fetch item, found %s", describeValue(v))
	}
	name, _, _ := strings.Cut(v.Str, "[")
	return strings.ToUpper(name), nil
}

// addItem adds one item; raw is the item as sent, with its section.
func (fa *fetchArgs) addItem(name, raw string) error {
	o := fa.Options
	if len(raw) > len(name) && name != "BODY" && name != "BODY.PEEK" && name != "BINARY" &&
		name != "BINARY.PEEK" && name != "BINARY.SIZE" {
		return badArg("item %s takes no section", name)
	}
	switch name {
	case "UID":
		o.UID = true
	case "FLAGS":
		o.Flags = true
	case "INTERNALDATE":
		o.InternalDate = true
	case "RFC822.SIZE":
		o.RFC822Size = true
	case "ENVELOPE":
		o.Envelope = true
	case "BODYSTRUCTURE":
		o.BodyStructure = &imap.FetchItemBodyStructure{Extended: true}
	case "MODSEQ":
		o.ModSeq = true
	case "SAVEDATE":
		fa.SaveDate = true
	case "EMAILID":
		fa.EmailID = true
	case "THREADID":
		fa.ThreadID = true
	case "RFC822", "RFC822.PEEK":
		fa.RFC822 = true
		fa.addLegacy("RFC822", &imap.FetchItemBodySection{Peek: name == "RFC822.PEEK"})
	case "RFC822.HEADER":
		fa.RFC822Header = true
		fa.addLegacy(name, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true})
	case "RFC822.TEXT":
		fa.RFC822Text = true
		fa.addLegacy(name, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
	case "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		return fa.addSectionItem(name, raw[len(name):])
	default:
		return badArg("unknown item %s", truncateQuote(raw))
	}
	return nil
}

func (fa *fetchArgs) addLegacy(name string, bs *imap.FetchItemBodySection) {
	if fa.Legacy == nil {
		fa.Legacy = map[*imap.FetchItemBodySection]string{}
	}
	fa.Legacy[bs] = name
	fa.Options.BodySection = append(fa.Options.BodySection, bs)
}

// addSectionItem adds BODY[...]<o.n> and the BINARY items; rest follows the item's name.
func (fa *fetchArgs) addSectionItem(name, rest string) error {
	o := fa.Options
	if rest == "" {
		if name != "BODY" {
			return badArg("item %s needs a section in brackets, such as %s[]", name, name)
		}
		if o.BodyStructure == nil {
			o.BodyStructure = &imap.FetchItemBodyStructure{}
		}
		fa.Body = true
		return nil
	}
	section, partial, err := splitSection(name, rest)
	if err != nil {
		return err
	}
	if strings.HasPrefix(name, "BINARY") {
		return fa.addBinary(name, section, partial)
	}
	bs := &imap.FetchItemBodySection{Peek: name == "BODY.PEEK"}
	if err := parseBodySection(bs, section); err != nil {
		return badArg("%s section %s: %v", name, truncateQuote(section), err)
	}
	if bs.Partial, err = parsePartial(name, partial); err != nil {
		return err
	}
	o.BodySection = append(o.BodySection, bs)
	return nil
}

func (fa *fetchArgs) addBinary(name, section, partial string) error {
	part, err := parsePartNumbers(section)
	if err != nil {
		return badArg("%s section %s: a binary section is only part numbers such as 1.2", name, truncateQuote(section))
	}
	if name == "BINARY.SIZE" {
		if partial != "" {
			return badArg("BINARY.SIZE takes no partial range")
		}
		fa.Options.BinarySectionSize = append(fa.Options.BinarySectionSize, &imap.FetchItemBinarySectionSize{Part: part})
		return nil
	}
	p, err := parsePartial(name, partial)
	if err != nil {
		return err
	}
	fa.Options.BinarySection = append(fa.Options.BinarySection,
		&imap.FetchItemBinarySection{Part: part, Partial: p, Peek: name == "BINARY.PEEK"})
	return nil
}

// splitSection splits "[section]<partial>" into the section's text and the partial's text
// ("" when absent). The reader keeps quoted header names whole, so a "]" inside quotes is not
// the end.
func splitSection(name, rest string) (section, partial string, err error) {
	if rest[0] != '[' {
		return "", "", badArg("unknown item %s", truncateQuote(name+rest))
	}
	inQuote := false
	for i := 1; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ']' && !inQuote:
			return rest[1:i], rest[i+1:], nil
		}
	}
	return "", "", badArg("%s: unterminated section %s", name, truncateQuote(rest))
}

// parsePartial reads "<offset.count>"; count must be above zero (RFC 9051 partial).
func parsePartial(name, s string) (*imap.SectionPartial, error) {
	if s == "" {
		return nil, nil
	}
	bad := badArg("%s: invalid partial %s: expected <offset.count>, such as <0.1024>", name, truncateQuote(s))
	if len(s) < 2 || s[0] != '<' || s[len(s)-1] != '>' {
		return nil, bad
	}
	off, count, ok := strings.Cut(s[1:len(s)-1], ".")
	o, err1 := parseDecimal(off)
	n, err2 := parseDecimal(count)
	if !ok || err1 != nil || err2 != nil || n == 0 {
		return nil, bad
	}
	return &imap.SectionPartial{Offset: o, Size: n}, nil
}

// parseDecimal reads digits only (strconv would take a sign) into a non-negative int64.
func parseDecimal(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// parsePartNumbers reads "1.2.3"; "" is the whole message.
func parsePartNumbers(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var part []int
	for p := range strings.SplitSeq(s, ".") {
		n, err := parseDecimal(p)
		if err != nil || n == 0 || n > maxNumber {
			return nil, strconv.ErrSyntax
		}
		part = append(part, int(n))
	}
	return part, nil
}

// parseBodySection reads a section-spec (RFC 9051): part numbers, then HEADER, TEXT,
// HEADER.FIELDS[.NOT] (names), or MIME after a part number.
func parseBodySection(bs *imap.FetchItemBodySection, s string) error {
	for s != "" && s[0] >= '0' && s[0] <= '9' {
		num, rest, _ := strings.Cut(s, ".")
		n, err := parseDecimal(num)
		if err != nil || n == 0 || n > maxNumber {
			return badArg("invalid part number %s", truncateQuote(num))
		}
		bs.Part = append(bs.Part, int(n))
		if rest == "" && len(num) < len(s) {
			return badArg("a section cannot end with a dot")
		}
		s = rest
	}
	spec, fields, hasFields := strings.Cut(s, " ")
	switch spec = strings.ToUpper(spec); spec {
	case "":
		if hasFields {
			return badArg("unexpected space")
		}
	case "HEADER", "TEXT", "MIME":
		if hasFields {
			return badArg("%s takes no list of header fields", spec)
		}
		if spec == "MIME" && len(bs.Part) == 0 {
			return badArg("MIME needs a part number, such as 1.MIME")
		}
		bs.Specifier = imap.PartSpecifier(spec)
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if !hasFields {
			return badArg("%s needs a list of header fields, such as %s (From To)", spec, spec)
		}
		names, err := parseHeaderList(fields)
		if err != nil {
			return err
		}
		bs.Specifier = imap.PartSpecifierHeader
		if spec == "HEADER.FIELDS" {
			bs.HeaderFields = names
		} else {
			bs.HeaderFieldsNot = names
		}
	default:
		return badArg("unknown section %s: expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME", truncateQuote(spec))
	}
	return nil
}

// parseHeaderList reads "(From "To" X-Spam)": names as atoms or quoted strings, one space
// apart, each a valid header field name (RFC 5322 ftext).
func parseHeaderList(s string) ([]string, error) {
	bad := badArg("invalid header list %s: expected names in parentheses, such as (From To)", truncateQuote(s))
	if len(s) < 3 || s[0] != '(' || s[len(s)-1] != ')' {
		return nil, bad
	}
	s = s[1 : len(s)-1]
	var names []string
	for {
		name, rest, err := headerListName(s)
		if err != nil {
			return nil, err
		}
		if !isFieldName(name) {
			return nil, badArg("invalid header field name %s", truncateQuote(name))
		}
		names = append(names, name)
		if rest == "" {
			return names, nil
		}
		if rest[0] != ' ' || len(rest) == 1 {
			return nil, bad
		}
		s = rest[1:]
	}
}

// headerListName splits the first name, quoted or not, from the rest of the list.
func headerListName(s string) (name, rest string, err error) {
	if s == "" || s[0] != '"' {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			i = len(s)
		}
		return s[:i], s[i:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i++; i == len(s) {
				return "", "", badArg("unterminated quoted header name")
			}
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", badArg("unterminated quoted header name")
}

func isFieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':' {
			return false
		}
	}
	return s != ""
}

// readModifiers reads the fetch-modifiers list (RFC 4466): CHANGEDSINCE and VANISHED.
func (fa *fetchArgs) readModifiers(mods wire.Value, uid bool) error {
	if mods.Kind != wire.KindList {
		return badArg("expected modifiers in parentheses after the items, found %s", describeValue(mods))
	}
	a := newArgList("modifiers", mods.List)
	changedSince := false
	for a.more() {
		name, err := a.nextAtom("a modifier")
		if err != nil {
			return err
		}
		switch {
		case name == "CHANGEDSINCE" && !changedSince:
			n, err := a.nextNumber("CHANGEDSINCE's mod-sequence", maxNumber64)
			if err != nil {
				return err
			}
			changedSince, fa.ChangedSince = true, n
			fa.Options.ChangedSince, fa.Options.ModSeq = n, true
		case name == "VANISHED" && !fa.Vanished:
			if !uid {
				return badArg("VANISHED is only for UID FETCH (RFC 7162)")
			}
			fa.Vanished = true
		case name == "CHANGEDSINCE" || name == "VANISHED":
			return badArg("modifier %s given twice", name)
		default:
			return badArg("unknown modifier %s", truncateQuote(name))
		}
	}
	if fa.Vanished && !changedSince {
		return badArg("VANISHED needs CHANGEDSINCE (RFC 7162)")
	}
	return nil
}
