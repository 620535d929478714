package sieve

import (
	"errors"
	"strings"
	"testing"
)

// TestCompileErrors checks that a bad script is refused with a message that names the
// place and the problem, as ManageSieve will pass it on to the person editing the script.
func TestCompileErrors(t *testing.T) {
	for _, c := range compileErrorCases {
		_, err := Compile(c.script)
		if err == nil {
			t.Errorf("%q compiled, want error %q", c.script, c.want)
			continue
		}
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("%q: error %T is not an *Error", c.script, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %q", c.script, err, c.want)
		}
	}
}

var compileErrorCases = []struct{ script, want string }{
	{"if heaader \"x\" \"y\" { keep; }", `line 1, column 4: unknown test "heaader"`},
	{"require \"fileinto\";\n\nif header :contains \"a\" \"b\" {\n  filinto \"x\";\n}", `line 4, column 3: unknown command "filinto"`},
	{"require \"vacation-seconds\";", `line 1, column 9: extension "vacation-seconds" is not supported`},
	{"require [\"fileinto\", \"nope\"];", `extension "nope" is not supported`},
	{"fileinto \"x\";", `line 1, column 1: command "fileinto" needs require "fileinto"`},
	{"keep;\nrequire \"fileinto\";", "line 2, column 1: require must come before any other command"},
	{"if true { require \"fileinto\"; }", "require must come before any other command"},
	{"keep", `line 1, column 5: expected ";" after "keep", found end of script`},
	{"if true { keep;", `block of "if" is never closed`},
	{"keep; }", `line 1, column 7: unexpected "}"`},
	{"if header :is \"a\" \"b\" keep;", `line 1, column 1: if needs a block in { }`},
	{"if true keep;", `if needs a block`},
	{"\"just a string\";", "expected a command such as keep or if"},
	{"if header :contains \"subject\" \"x { keep; }", "line 1, column 31: string is never closed"},
	{"/* unclosed", "line 1, column 1: comment started with /* is never closed"},
	{"reject text:\nno end\n", `text: string is never closed`},
	{"if size :over 10X { keep; }", "a number may only end in K, M or G"},
	{"if size :over 99999999999999999999 { keep; }", "number is too large"},
	{"if size :over 99999999999G { keep; }", "number is too large"},
	{"if size 10 { keep; }", "size needs exactly one of :over or :under"},
	{"if size :over \"10\" { keep; }", "argument 1 of size must be a number"},
	{"if header :is :contains \"a\" \"b\" { keep; }", "header cannot take both :is and :contains"},
	{"if header :is :is \"a\" \"b\" { keep; }", "header takes :is only once"},
	{"if header :regex \"a\" \"b\" { keep; }", `tag :regex needs require "regex"`},
	{"require \"regex\";\nif header :regex \"a\" \"(\" { keep; }", "line 2, column 22: bad regular expression"},
	{"if header :comparator \"i;unicode-casemap\" \"a\" \"b\" { keep; }", `unknown comparator "i;unicode-casemap"`},
	{"if header :comparator \"i;ascii-numeric\" \"a\" \"b\" { keep; }", `needs require "comparator-i;ascii-numeric"`},
	{"require \"comparator-i;ascii-numeric\";\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"b\" { keep; }", "cannot be used with :contains"},
	{"require \"relational\";\nif header :value \"bigger\" \"a\" \"b\" { keep; }", `relation "bigger" of :value is unknown`},
	{"if header :comparator { keep; }", ":comparator of header must be followed by a string"},
	{"if header \"a\" { keep; }", "header takes 2 argument(s) besides its tags, found 1"},
	{"if header \"a\" :is \"b\" { keep; }", "tag :is must come before the other arguments"},
	{"if address :over \"to\" \"x\" { keep; }", "address does not take the tag :over"},
	{"if header :localpart \"to\" \"x\" { keep; }", "header does not take the tag :localpart"},
	{"if true;", "if needs a block"},
	{"keep { }", "keep takes no block"},
	{"if { keep; }", "if needs exactly one test"},
	{"if allof { keep; }", "allof needs a list of tests"},
	{"if true true { keep; }", `line 1, column 9: true takes no test, found "true"`},
	{"if not { keep; }", "not needs exactly one test"},
	{"keep true;", "keep takes no test"},
	{"if keep { keep; }", `"keep" is a command, not a test`},
	{"header \"a\" \"b\";", `"header" is a test, not a command`},
	{"elsif true { keep; }", "elsif must follow an if or elsif block"},
	{"keep; else { keep; }", "else must follow an if or elsif block"},
	{"redirect \"not an address\";", `redirect: "not an address" is not a valid mail address`},
	{"redirect [\"a@example.com\", \"b@example.com\"];", "argument 1 of redirect must be a string"},
	{"require \"variables\";\nset \"1bad\" \"x\";", `"1bad" is not a valid variable name`},
	{"require \"envelope\";\nif envelope \"sender\" \"x\" { keep; }", `envelope part "sender" is unknown`},
	{"require \"date\";\nif date \"date\" \"fortnight\" \"1\" { keep; }", `date part "fortnight" is unknown`},
	{"require \"date\";\nif date :zone \"CET\" \"date\" \"year\" \"1\" { keep; }", `zone "CET" is not of the form`},
	{"require \"vacation\";\nvacation :from \"not valid\" \"x\";", `vacation :from: "not valid" is not a valid mail address`},
	{"require \"vacation\";\nvacation :days \"3\" \"x\";", ":days of vacation must be followed by a number"},
	{"if header :index 1 \"a\" \"b\" { keep; }", `tag :index needs require "index"`},
	{"if header :count \"eq\" \"a\" \"b\" { keep; }", `tag :count needs require "relational"`},
	{"if exists [\"a\", ] { keep; }", `expected a string in the list`},
	{"if anyof(true false) { keep; }", `true takes no test, found "false"`},
	{"if anyof(true; false) { keep; }", `expected "," or ")" in the test list`},
	{"if : { keep; }", "a tag needs a name after the colon"},
	{"keep; @", "unexpected character '@'"},
}

func TestLimits(t *testing.T) {
	lim := DefaultLimits
	lim.MaxScriptSize = 10
	if _, err := CompileLimits("keep; keep; keep;", lim); err == nil || !strings.Contains(err.Error(), "more than the limit of 10") {
		t.Errorf("size limit: %v", err)
	}
	lim = DefaultLimits
	lim.MaxNesting = 3
	if _, err := CompileLimits("if true { if true { if true { if true { keep; } } } }", lim); err == nil || !strings.Contains(err.Error(), "nested more than 3 deep") {
		t.Errorf("nesting limit: %v", err)
	}
	if _, err := CompileLimits("if not not not not true { keep; }", lim); err == nil || !strings.Contains(err.Error(), "nested more than 3 deep") {
		t.Errorf("test nesting limit: %v", err)
	}
	lim = DefaultLimits
	lim.MaxCommands = 5
	if _, err := CompileLimits("keep; keep; keep; keep; keep; keep;", lim); err == nil || !strings.Contains(err.Error(), "more than 5 commands") {
		t.Errorf("command limit: %v", err)
	}
	lim = DefaultLimits
	lim.MaxSteps = 50
	s, err := CompileLimits("if header :contains \"subject\" \"x\" { keep; }\n"+strings.Repeat("if true { }\n", 60), lim)
	if err != nil {
		t.Fatal(err)
	}
	res := s.Evaluate(ParseMessage([]byte(msgPlain)), defaultEnv, testNow)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "more than 50 steps") || len(res.Actions) != 1 || !res.Actions[0].Implicit {
		t.Errorf("step limit: %v %v", res.Err, describeAll(res.Actions))
	}
}

// TestParseForms checks the syntax forms that scripts in the wild use.
func TestParseForms(t *testing.T) {
	ok := []string{
		"",
		"# only a comment",
		"/* bracketed\n comment */ keep;",
		"keep;# trailing comment without newline",
		"require [\"fileinto\"];\r\nfileinto \"x\";\r\n",
		"REQUIRE \"fileinto\"; FILEINTO \"x\"; IF TRUE { KEEP; }",
		"if size :over 1k { keep; } if size :under 2G { keep; }",
		"require \"reject\";\nreject text: # comment after text:\nline\n.\n;",
		"require \"reject\";\nreject text:\r\ncrlf line\r\n.\r\n;",
		"if anyof (true) { }",
		"if header :is \"subject\" \"a\\\"b\\\\c\\d\" { }",
		"if header :contains [\"a\",\"b\"] [\"c\"] { }",
		"if exists [ \"a\" , \"b\" ] { }",
		"require [\"imap4flags\"]; if hasflag \"\\\\Seen\" { }",
	}
	for _, src := range ok {
		if _, err := Compile(src); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

func TestEscapesAndText(t *testing.T) {
	runCase(t, evalCase{script: "require \"fileinto\";\nfileinto \"a\\\"b\\\\c\\d\";", want: []string{`fileinto a"b\cd`}})
	runCase(t, evalCase{script: "require \"fileinto\";\nfileinto text:\nx\n.\n;", want: []string{"fileinto x\r\n"}})
}

func TestExpansionIsBounded(t *testing.T) {
	src := "require [\"variables\",\"reject\"];\nset \"a\" \"" + strings.Repeat("x", 4000) + "\";\nreject \"" + strings.Repeat("${a}", 10000) + "\";"
	s, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	res := s.Evaluate(ParseMessage([]byte(msgPlain)), defaultEnv, testNow)
	if res.Err != nil || len(res.Actions) != 1 || len(res.Actions[0].Reason) != maxExpanded {
		t.Fatalf("err %v, %d actions, reason of %d bytes", res.Err, len(res.Actions), len(res.Actions[0].Reason))
	}
}

func TestMatchingCostCountsSteps(t *testing.T) {
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = `"` + strings.Repeat("a", 99) + `b"`
	}
	s, err := Compile("require \"body\";\nif body :raw :contains [" + strings.Join(keys, ",") + "] { discard; }")
	if err != nil {
		t.Fatal(err)
	}
	big := msg(strings.Repeat("a", 2<<20), "From: a@example.com")
	res := s.Evaluate(ParseMessage([]byte(big)), defaultEnv, testNow)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "steps") {
		t.Fatalf("err %v, actions %q", res.Err, describeAll(res.Actions))
	}
}

func TestRequires(t *testing.T) {
	s, err := Compile("require [\"fileinto\", \"vacation\"];\nkeep;")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Requires("vacation") || !s.Requires("fileinto") || s.Requires("body") {
		t.Errorf("Requires: vacation %v fileinto %v body %v", s.Requires("vacation"), s.Requires("fileinto"), s.Requires("body"))
	}
}
