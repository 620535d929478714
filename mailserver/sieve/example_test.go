package sieve_test

import (
	"fmt"
	"time"

	"github.com/kubemail/kubemail/mailserver/sieve"
)

// Delivery compiles a mailbox's script once, runs it for each message and carries out the
// actions; a runtime error still leaves the implicit keep.
func ExampleScript_Evaluate() {
	script, err := sieve.Compile(`require ["fileinto", "imap4flags"];
if header :contains "List-Id" "dev.lists.example.org" {
    addflag "\\Seen";
    fileinto "Lists/dev";
}`)
	if err != nil {
		fmt.Println(err) // line and column, for ManageSieve and the Mailbox condition
		return
	}
	msg := sieve.ParseMessage([]byte("From: dev-bounces@lists.example.org\r\n" +
		"List-Id: Developers <dev.lists.example.org>\r\nSubject: digest\r\n\r\nbody\r\n"))
	env := sieve.Envelope{From: "dev-bounces@lists.example.org", To: "bob@example.org"}
	res := script.Evaluate(msg, env, time.Now())
	if res.Err != nil {
		fmt.Println("script failed, keeping:", res.Err)
	}
	for _, a := range res.Actions {
		fmt.Println(a.Kind, a.Mailbox, a.Flags)
	}
	// Output: fileinto Lists/dev [\Seen]
}

func ExampleCompile_error() {
	_, err := sieve.Compile("require \"fileinto\";\nif heaader :is \"subject\" \"x\" {\n  fileinto \"y\";\n}")
	fmt.Println(err)
	// Output: line 2, column 4: unknown test "heaader"
}
