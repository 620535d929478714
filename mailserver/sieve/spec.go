package sieve

type argType int

const (
	atNone argType = iota
	atString
	atStrList
	atNumber
)

func (a argType) String() string {
	switch a {
	case atString:
		return "a string"
	case atStrList:
		return "a string or string list"
	case atNumber:
		return "a number"
	}
	return "nothing"
}

// tagDef describes a tagged argument. Tags of one group exclude each other (:is and
// :contains, :localpart and :domain, ...).
type tagDef struct {
	ext   string
	arg   argType
	group string
}

var tagDefs = map[string]tagDef{
	"is": {group: "match"}, "contains": {group: "match"}, "matches": {group: "match"},
	"regex":      {ext: "regex", group: "match"},
	"value":      {ext: "relational", arg: atString, group: "match"},
	"count":      {ext: "relational", arg: atString, group: "match"},
	"comparator": {arg: atString, group: "comparator"},
	"all":        {group: "addrpart"}, "localpart": {group: "addrpart"}, "domain": {group: "addrpart"},
	"user": {ext: "subaddress", group: "addrpart"}, "detail": {ext: "subaddress", group: "addrpart"},
	"over": {group: "size"}, "under": {group: "size"},
	"copy":    {ext: "copy"},
	"create":  {ext: "mailbox"},
	"flags":   {ext: "imap4flags", arg: atStrList},
	"days":    {arg: atNumber},
	"subject": {arg: atString}, "from": {arg: atString}, "addresses": {arg: atStrList},
	"mime": {}, "handle": {arg: atString},
	"raw": {group: "transform"}, "content": {arg: atStrList, group: "transform"}, "text": {group: "transform"},
	"zone": {arg: atString, group: "zone"}, "originalzone": {group: "zone"},
	"index": {ext: "index", arg: atNumber}, "last": {ext: "index"},
	"lower": {group: "case"}, "upper": {group: "case"},
	"lowerfirst": {group: "first"}, "upperfirst": {group: "first"},
	"quotewildcard": {group: "quote"}, "quoteregex": {ext: "regex", group: "quote"},
	"length": {},
}

// spec is the signature of a command or test.
type spec struct {
	ext      string // extension a script must require to use it
	test     bool
	tags     []string
	pos      []argType
	optFirst bool // the first positional argument may be left out (imap4flags variable names)
	tests    int  // 0: none, 1: exactly one, -1: one or more
	block    bool
}

var (
	matchTags   = []string{"is", "contains", "matches", "regex", "value", "count", "comparator"}
	addrTags    = []string{"all", "localpart", "domain", "user", "detail"}
	indexTags   = []string{"index", "last"}
	actionFlags = []string{"flags"}
)

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var commandSpecs = map[string]*spec{
	"require":    {pos: []argType{atStrList}},
	"if":         {tests: 1, block: true},
	"elsif":      {tests: 1, block: true},
	"else":       {block: true},
	"stop":       {},
	"keep":       {tags: actionFlags},
	"discard":    {},
	"fileinto":   {ext: "fileinto", tags: join([]string{"copy", "create"}, actionFlags), pos: []argType{atString}},
	"redirect":   {tags: []string{"copy"}, pos: []argType{atString}},
	"reject":     {ext: "reject", pos: []argType{atString}},
	"ereject":    {ext: "ereject", pos: []argType{atString}},
	"set":        {ext: "variables", tags: []string{"lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "quoteregex", "length"}, pos: []argType{atString, atString}},
	"addflag":    {ext: "imap4flags", pos: []argType{atString, atStrList}, optFirst: true},
	"setflag":    {ext: "imap4flags", pos: []argType{atString, atStrList}, optFirst: true},
	"removeflag": {ext: "imap4flags", pos: []argType{atString, atStrList}, optFirst: true},
	"error":      {ext: "ihave", pos: []argType{atString}},
	"vacation":   {ext: "vacation", tags: []string{"days", "subject", "from", "addresses", "mime", "handle"}, pos: []argType{atString}},
}

var testSpecs = map[string]*spec{
	"address":     {test: true, tags: join(matchTags, addrTags, indexTags), pos: []argType{atStrList, atStrList}},
	"header":      {test: true, tags: join(matchTags, indexTags), pos: []argType{atStrList, atStrList}},
	"envelope":    {test: true, ext: "envelope", tags: join(matchTags, addrTags), pos: []argType{atStrList, atStrList}},
	"exists":      {test: true, pos: []argType{atStrList}},
	"size":        {test: true, tags: []string{"over", "under"}, pos: []argType{atNumber}},
	"allof":       {test: true, tests: -1},
	"anyof":       {test: true, tests: -1},
	"not":         {test: true, tests: 1},
	"true":        {test: true},
	"false":       {test: true},
	"string":      {test: true, ext: "variables", tags: matchTags, pos: []argType{atStrList, atStrList}},
	"hasflag":     {test: true, ext: "imap4flags", tags: matchTags, pos: []argType{atStrList, atStrList}, optFirst: true},
	"body":        {test: true, ext: "body", tags: join(matchTags, []string{"raw", "content", "text"}), pos: []argType{atStrList}},
	"date":        {test: true, ext: "date", tags: join(matchTags, indexTags, []string{"zone", "originalzone"}), pos: []argType{atString, atString, atStrList}},
	"ihave":       {test: true, ext: "ihave", pos: []argType{atStrList}},
	"currentdate": {test: true, ext: "date", tags: join(matchTags, []string{"zone"}), pos: []argType{atString, atStrList}},
}

// Extensions lists every capability a script may require, as ManageSieve advertises them.
var Extensions = []string{
	"body", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric", "comparator-i;octet",
	"copy", "date", "encoded-character", "envelope", "ereject", "fileinto", "ihave",
	"imap4flags", "index", "mailbox", "regex", "reject", "relational", "subaddress", "vacation", "variables",
}

func supported(ext string) bool {
	for _, e := range Extensions {
		if e == ext {
			return true
		}
	}
	return false
}
