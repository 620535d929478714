// Package store keeps users' mail on disk: one Maildir-style tree per mailbox, one folder per
// IMAP mailbox, and a per-folder journal (UIDs, flags, modification sequences) that can be
// rebuilt from the message files. It knows nothing of SMTP, IMAP or POP3.
//
// Durability: a message is written to tmp/, fsynced, renamed into cur/ under a name that carries
// its UID and size, and cur/ is fsynced before Deliver returns. The files are the truth; the
// journal is a cache of what the file names cannot hold (flags, modification sequences) and is
// replayed and reconciled with the files when a folder is opened.
package store
