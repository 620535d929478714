// Package wire reads IMAP commands and writes IMAP responses (RFC 9051, RFC 3501): the bounded,
// streaming syntax layer under the IMAP server's state machine; it knows nothing of mailboxes.
package wire
