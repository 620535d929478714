// Package names is the one place for the names kubemail's operator and mail server agree on:
// labels, annotations, finalizers, object names, ports and paths inside the pods.
package names

import "fmt"

// Labels on every object the operator creates for a MailCluster.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	AppName   = "kubemail"
	Component = "mailserver"
	ManagedBy = "kubemail-operator"
)

// Annotations.
const (
	// AnnotationConfigHash on the pod template rolls the pods when server settings change.
	AnnotationConfigHash = "mail.kubemail.io/config-hash"
	// AnnotationGeneratedPasswordSHA256 on a Mailbox's credentials Secret is the hex SHA-256 of
	// the password the operator generated into it. While the password still matches, the
	// operator knows it is random and hashes it cheaply (passwordhash.HashGenerated); a password someone
	// put there instead gets the full-strength hash.
	AnnotationGeneratedPasswordSHA256 = "mail.kubemail.io/generated-password-sha256"
	// AnnotationLocalAddress on an EndpointSlice gives the host:port of a mail server that runs
	// as a local process (make dev), where endpoint addresses could not be loopback IPs. Slices
	// made by Kubernetes for real pods never carry it.
	AnnotationLocalAddress = "mail.kubemail.io/local-address"
	// AnnotationForceDelete set to "true" on a MailDomain lets its deletion go ahead although
	// Mailboxes or MailAliases still use it. Their mail is then refused with a temporary error
	// (never relayed) until they are deleted or the domain is created again.
	AnnotationForceDelete = "mail.kubemail.io/force-delete"
)

// Finalizers.
const (
	// FinalizerMailbox holds a Mailbox with deletionPolicy Delete until its stored mail is purged.
	FinalizerMailbox = "mail.kubemail.io/mailbox"
	// FinalizerMailDomain holds a MailDomain being deleted while Mailboxes or MailAliases still
	// use it, so their mail keeps flowing until they are gone.
	FinalizerMailDomain = "mail.kubemail.io/maildomain"
)

// Object names derived from a MailCluster's name.
func HeadlessService(cluster string) string { return cluster + "-headless" }
func ClientService(cluster string) string   { return cluster }
func ConfigMap(cluster string) string       { return cluster + "-config" }
func ServiceAccount(cluster string) string  { return cluster + "-mailserver" }
func Role(cluster string) string            { return cluster + "-mailserver" }
func SelfSignedTLS(cluster string) string   { return cluster + "-tls-selfsigned" }

// IssuedTLS names both the cert-manager Certificate the operator requests for a cluster with
// spec.tls.issuerRef and the Secret cert-manager writes it into.
func IssuedTLS(cluster string) string   { return cluster + "-tls" }
func AdminSecret(cluster string) string { return cluster + "-admin" }
func StatefulSet(cluster string) string { return cluster }

// ClusterCA holds the CA of the connections between a cluster's replicas (ca.crt, ca.key),
// read by the operator only; ClusterTLS the certificate it issued every replica (tls.crt,
// tls.key) and ca.crt, mounted into the pods at ClusterDir.
func ClusterCA(cluster string) string  { return cluster + "-cluster-ca" }
func ClusterTLS(cluster string) string { return cluster + "-cluster-tls" }

// NetworkPolicy admits only the cluster's own pods to PortCluster.
func NetworkPolicy(cluster string) string { return cluster }
func PDB(cluster string) string           { return cluster }

// OperatorSecret holds what only the operator reads about a cluster: the key of the password
// fingerprints (OperatorFingerprintKey).
func OperatorSecret(cluster string) string { return cluster + "-operator" }

// DKIMSecret is the Secret holding a MailDomain's signing key (DKIMPrivateKeyKey).
func DKIMSecret(domain string) string { return domain + "-dkim" }

// CredentialsSecret is the Secret with a Mailbox's generated password (PasswordKey, UsernameKey).
func CredentialsSecret(mailbox string) string { return mailbox + "-credentials" }

// Keys of the Secrets above.
const (
	OperatorFingerprintKey = "fingerprint-key"
	DKIMPrivateKeyKey      = "private.pem"
	// PasswordKey is also the default key of a Mailbox's spec.passwordSecretRef.
	PasswordKey = "password"
	UsernameKey = "username"
)

// Port is one protocol a mail server pod serves: the unprivileged port the container listens
// on and the standard port its Service exposes.
type Port struct {
	Name          string
	ContainerPort int32
	ServicePort   int32
}

// Ports in the order they appear in pod and Service specs.
var (
	PortSMTP        = Port{"smtp", 2525, 25}
	PortSubmission  = Port{"submission", 2587, 587}
	PortSubmissions = Port{"submissions", 2465, 465}
	PortIMAP        = Port{"imap", 2143, 143}
	PortIMAPS       = Port{"imaps", 2993, 993}
	PortPOP3        = Port{"pop3", 2110, 110}
	PortPOP3S       = Port{"pop3s", 2995, 995}
	PortHTTP        = Port{"http", 8080, 8080}
	// PortAutoconfig serves client autoconfiguration and MTA-STS when a cluster enables it.
	PortAutoconfig = Port{"https", 8443, 443}
	// PortCluster is the replicas' internal listener (IMAP, POP3 and LMTP between replicas,
	// mutual TLS); never on the client Service.
	PortCluster = Port{"cluster", 7993, 7993}

	MailPorts = []Port{PortSMTP, PortSubmission, PortSubmissions, PortIMAP, PortIMAPS, PortPOP3, PortPOP3S}
)

// Paths inside a mail server pod.
const (
	DataDir    = "/var/lib/kubemail"
	ConfigDir  = "/etc/kubemail/config"
	ConfigFile = ConfigDir + "/config.yaml"
	TLSDir     = "/etc/kubemail/tls"
	AdminDir   = "/etc/kubemail/admin"
	// ClusterDir holds ClusterTLS's files.
	ClusterDir = "/etc/kubemail/cluster"
	// RelayDir holds the smarthost's credentials (spec.outbound.relay.credentialsSecretRef),
	// as the files RelayUsernameKey and RelayPasswordKey: the keys of that Secret.
	RelayDir         = "/etc/kubemail/relay"
	RelayUsernameKey = "username"
	RelayPasswordKey = "password"
	// AdminTokenKey is the key of the admin Secret (and the file in AdminDir) with the token
	// the operator presents to the servers' /admin endpoints.
	AdminTokenKey = "token"
)

// Pod returns the name of replica ordinal of a cluster's StatefulSet.
func Pod(cluster string, ordinal int) string {
	return fmt.Sprintf("%s-%d", StatefulSet(cluster), ordinal)
}

// UID and GID the mail server runs as (non-root; owns its volume through fsGroup).
const RunAsUser = 65532
