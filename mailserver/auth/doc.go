// Package auth checks mail account passwords and throttles failed logins. It verifies argon2id
// and bcrypt hashes from the directory, caches recent successful verifications so a client that
// logs in every few seconds does not pay argon2 each time, and slows then refuses clients and
// accounts with many recent failures. It knows nothing of SMTP, IMAP, POP3 or where hashes live.
package auth
