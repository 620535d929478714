package imapd

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// argFuzzLimits are small so that short inputs reach deep lists and many arguments.
var argFuzzLimits = wire.Limits{MaxLine: 512, MaxLiteralPreAuth: 256, MaxLiteral: 1024, MaxDepth: 8, MaxArgs: 64}

// argSeeds are the inputs of the table tests, as the arguments of a command.
func argSeeds() []string {
	var in []string
	for _, tc := range mailboxCases {
		in = append(in, tc.in)
	}
	for _, tc := range flagCases {
		in = append(in, tc.in)
	}
	for _, tc := range storeCases {
		in = append(in, tc.in)
	}
	for _, tc := range idCases {
		in = append(in, tc.in)
	}
	for _, tc := range fetchCases {
		in = append(in, tc.in)
	}
	for _, tc := range searchCases {
		in = append(in, tc.in)
	}
	for _, tc := range listCases {
		in = append(in, tc.in)
	}
	for _, tc := range selectCases {
		in = append(in, tc.in)
	}
	for _, tc := range appendCases {
		in = append(in, tc.in)
	}
	for _, bad := range [][]badCase{badMailboxCases, badFlagCases, badStoreCases, badFetchCases, badSearchCases,
		badListCases, badSelectCases, badAppendCases} {
		for _, tc := range bad {
			in = append(in, tc.in)
		}
	}
	return in
}

// FuzzParseArgs feeds whatever the wire reader makes of the input to every parser: none may
// panic, and every refusal must be an *argError the handler can answer.
func FuzzParseArgs(f *testing.F) {
	for _, s := range argSeeds() {
		f.Add([]byte("t1 X " + s + "\r\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := wire.NewReader(bytes.NewReader(data), nil, argFuzzLimits)
		r.SetAuthenticated(true)
		for range len(data) + 1 {
			cmd, err := r.ReadCommand()
			var we *wire.Error
			if errors.As(err, &we) && !we.Fatal {
				continue
			}
			if err != nil {
				return
			}
			fuzzAllParsers(t, cmd.Args)
		}
	})
}

func fuzzAllParsers(t *testing.T, args []wire.Value) {
	check := func(parser string, err error) {
		var ae *argError
		if err != nil && (!errors.As(err, &ae) || ae.text == "") {
			t.Fatalf("%s: error %#v is not an *argError with a message", parser, err)
		}
	}
	for _, b := range []bool{false, true} {
		_, err := parseFetchArgs(args, b)
		check("parseFetchArgs", err)
		_, err = parseSearchArgs(args, b)
		check("parseSearchArgs", err)
		_, err = parseListArgs(args, b)
		check("parseListArgs", err)
		_, err = parseSelectArgs(args, b)
		check("parseSelectArgs", err)
		_, err = parseAppendArgs(args, b)
		check("parseAppendArgs", err)
	}
	_, _, err := parseStoreArgs(args)
	check("parseStoreArgs", err)
	_, err = parseEnableArgs(args)
	check("parseEnableArgs", err)
	_, err = parseIDArgs(args)
	check("parseIDArgs", err)
	for _, v := range args {
		fuzzValueParsers(t, v, check)
	}
}

func fuzzValueParsers(t *testing.T, v wire.Value, check func(string, error)) {
	name, err := parseMailbox(v, false)
	check("parseMailbox", err)
	if err == nil {
		if back, err := utf7Decode(mailboxWireName(name, false)); err != nil || back != name {
			t.Fatalf("mailbox %q comes back from the wire as %q, %v", name, back, err)
		}
	}
	_, err = parseMailbox(v, true)
	check("parseMailbox", err)
	_, err = parseNumSet(v, false)
	check("parseNumSet", err)
	_, err = parseNumSet(v, true)
	check("parseNumSet", err)
	_, err = parseFlags(v)
	check("parseFlags", err)
	_, err = parseSearchDate(v)
	check("parseSearchDate", err)
	_, err = parseStatusItems(v)
	check("parseStatusItems", err)
	if s, ok := v.AString(); ok {
		_, err = parseDateTime(s)
		check("parseDateTime", err)
	}
}
