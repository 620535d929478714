// Package dirspec is the directory's format, the contract between the operator, which writes
// it, and the mail servers, which read it: domains, mailboxes with password hashes, aliases, and
// the one normal form every address and domain is compared in. It knows nothing of either side.
package dirspec

// Spec is the directory's serialized form (YAML or JSON). The operator writes it, sorted, into
// the cluster's directory Secrets; a standalone server reads it from a file.
type Spec struct {
	Domains   []DomainSpec  `json:"domains"`
	Mailboxes []MailboxSpec `json:"mailboxes,omitempty"`
	Aliases   []AliasSpec   `json:"aliases,omitempty"`
	// UnavailableDomains were served until their MailDomain went away while accounts still use
	// them. Mail to them is refused with a temporary error: it is neither stored nor relayed,
	// so the sender retries once the domain is served again.
	UnavailableDomains []string `json:"unavailableDomains,omitempty"`
}

// DomainSpec is one local domain.
type DomainSpec struct {
	Name string `json:"name"`
	// CatchAll receives mail for unknown addresses of the domain.
	CatchAll string `json:"catchAll,omitempty"`
	// DKIM signs mail leaving the domain.
	DKIM *DKIMSpec `json:"dkim,omitempty"`
	// MTASTSMode is the mode of the domain's MTA-STS policy: enforce, testing or none; empty
	// takes the server's setting (autoconfig.mtaSTS.mode).
	MTASTSMode string `json:"mtaSTSMode,omitempty"`
}

// DKIMSpec is a domain's signing key.
type DKIMSpec struct {
	Selector  string `json:"selector"`
	Algorithm string `json:"algorithm"` // rsa-sha256 or ed25519-sha256
	// PrivateKey is PEM (PKCS#8 or PKCS#1).
	PrivateKey string `json:"privateKey"`
}

// MailboxSpec is one account.
type MailboxSpec struct {
	Address     string `json:"address"`
	DisplayName string `json:"displayName,omitempty"`
	// PasswordHash may be empty only for a disabled mailbox (one whose password never could be
	// read); a disabled mailbox keeps its last hash so a restored password needs no re-hashing.
	PasswordHash string `json:"passwordHash"`
	// Quota in bytes; 0 means unlimited.
	Quota int64 `json:"quota,omitempty"`
	// Disabled refuses logins and submission; mail still arrives.
	Disabled bool `json:"disabled,omitempty"`
	// DisabledReason says why, for the server's log: the mailbox is suspended, or its password
	// cannot be read. Clients are only told to contact their administrator.
	DisabledReason string   `json:"disabledReason,omitempty"`
	Aliases        []string `json:"aliases,omitempty"`
	ForwardTo      []string `json:"forwardTo,omitempty"`
	// KeepCopy stores forwarded mail in the mailbox too; nil means true.
	KeepCopy *bool `json:"keepCopy,omitempty"`
	// Shard is the replica ordinal that holds the mailbox's data.
	Shard int `json:"shard,omitempty"`
	// Frozen marks a mailbox in the cut-over of a move between replicas: no replica stores mail
	// for it (the mail waits in the handoff queues and goes to its shard once it thaws) and none
	// serves a login to it (a temporary failure), so the last copy catches everything.
	Frozen bool `json:"frozen,omitempty"`
	// PasswordFingerprint is the operator's bookkeeping (a keyed MAC of the password, so it can
	// tell a changed password without re-hashing every one); the server ignores it.
	PasswordFingerprint string `json:"passwordFingerprint,omitempty"`
}

// AliasSpec is an address that fans out.
type AliasSpec struct {
	Address string   `json:"address"`
	Members []string `json:"members"`
}
