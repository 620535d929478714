// Package metrics defines every Prometheus metric the mail server exports, in one place, on a
// registry of its own (served on the HTTP port's /metrics).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the server's set of collectors.
type Metrics struct {
	Registry *prometheus.Registry

	// Connections accepted, by listener (smtp, submission, imap, ...).
	Connections *prometheus.CounterVec
	// ConnectionsActive open now, by listener.
	ConnectionsActive *prometheus.GaugeVec
	// ConnectionsRejected by listener and reason (limit, per_ip_limit, proxy_header).
	ConnectionsRejected *prometheus.CounterVec

	// MessagesAccepted by listener.
	MessagesAccepted *prometheus.CounterVec
	// MessagesRejected by listener and reason (too_big, loop, policy, rate_limit, ...).
	MessagesRejected *prometheus.CounterVec
	// RecipientsRejected by listener and reason (relay, unknown_user, over_quota, ...).
	RecipientsRejected *prometheus.CounterVec
	// BytesReceived in accepted messages, by listener.
	BytesReceived *prometheus.CounterVec
	// DeliveryLatency from end of DATA to durable storage in every recipient's mailbox.
	DeliveryLatency prometheus.Histogram

	// AuthAttempts by protocol and result (success, failure, throttled).
	AuthAttempts *prometheus.CounterVec
	// LoginsThrottled counts login attempts slowed (delayed) or refused, by the count that
	// decided it (address, pair, account).
	LoginsThrottled *prometheus.CounterVec

	// DirectoryReloads and DirectoryErrors count swaps and rejected inputs; DirectoryValid is
	// 0 while the newest input is broken (the last good directory stays in force).
	DirectoryReloads prometheus.Counter
	DirectoryErrors  prometheus.Counter
	DirectoryValid   prometheus.Gauge
	// DirectoryEntries by kind (domains, mailboxes, aliases).
	DirectoryEntries *prometheus.GaugeVec

	// TLSReloads and TLSReloadErrors count certificate reloads.
	TLSReloads      prometheus.Counter
	TLSReloadErrors prometheus.Counter

	// Sessions, Commands, CommandErrors and BytesSent for IMAP and POP3, by protocol.
	Sessions      *prometheus.CounterVec
	Commands      *prometheus.CounterVec
	CommandErrors *prometheus.CounterVec
	BytesSent     *prometheus.CounterVec

	// QueueMessages waiting in the outbound queue; QueueOldestAge is the age in seconds of the
	// oldest of them (0 when empty).
	QueueMessages  prometheus.Gauge
	QueueOldestAge prometheus.Gauge
	// DeliveryAttempts per recipient and result (delivered, deferred, failed, expired).
	DeliveryAttempts *prometheus.CounterVec
	// DSNs sent to senders of undeliverable mail.
	DSNs prometheus.Counter
	// OutboundTLS counts outgoing SMTP sessions by TLS (verified, unverified, none).
	OutboundTLS *prometheus.CounterVec
	// InboundAuth counts SPF, DKIM and DMARC results of mail arriving on the MX listener.
	InboundAuth *prometheus.CounterVec

	// Handoffs counts recipients of mail handed to the replica that holds their mailbox, by
	// result (delivered, queued, refused); HandoffQueueMessages and HandoffQueueOldestAge are
	// the handoff queue's size and the age of its oldest message, HandoffAttempts its attempts
	// per recipient by result, as for the outbound queue.
	Handoffs              *prometheus.CounterVec
	HandoffQueueMessages  prometheus.Gauge
	HandoffQueueOldestAge prometheus.Gauge
	HandoffAttempts       *prometheus.CounterVec
	// ProxiedSessions counts IMAP and POP3 logins served by the replica that holds the mailbox.
	ProxiedSessions *prometheus.CounterVec
}

// New creates the collectors on a new registry, with Go runtime and process metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{r}
	return &Metrics{
		Registry:            r,
		Connections:         f.counterVec("connections_total", "Connections accepted.", "listener"),
		ConnectionsActive:   f.gaugeVec("connections_active", "Connections open now.", "listener"),
		ConnectionsRejected: f.counterVec("connections_rejected_total", "Connections refused before a session started.", "listener", "reason"),
		MessagesAccepted:    f.counterVec("messages_accepted_total", "Messages accepted (answered 250 after durable storage).", "listener"),
		MessagesRejected:    f.counterVec("messages_rejected_total", "Messages refused at DATA, or at MAIL FROM for a user over the hourly limit.", "listener", "reason"),
		RecipientsRejected:  f.counterVec("recipients_rejected_total", "Recipients refused at RCPT.", "listener", "reason"),
		BytesReceived:       f.counterVec("received_bytes_total", "Bytes of accepted messages.", "listener"),
		DeliveryLatency: f.histogram("delivery_duration_seconds", "Time from the end of DATA until the message is durable in every mailbox.",
			prometheus.ExponentialBuckets(0.0005, 2, 16)),
		AuthAttempts: f.counterVec("auth_attempts_total", "Login attempts by result.", "protocol", "result"),
		LoginsThrottled: f.counterVec("logins_throttled_total", "Login attempts slowed or refused after recent failures, by the count that decided it.",
			"scope", "action"),
		DirectoryReloads: f.counter("directory_reloads_total", "Directories swapped in."),
		DirectoryErrors:  f.counter("directory_errors_total", "Directory inputs rejected (the last good one stays in force)."),
		DirectoryValid:   f.gauge("directory_valid", "1 when the newest directory input was accepted, 0 while it is broken."),
		DirectoryEntries: f.gaugeVec("directory_entries", "Entries in the directory in force.", "kind"),
		TLSReloads:       f.counter("tls_reloads_total", "Certificates reloaded."),
		TLSReloadErrors:  f.counter("tls_reload_errors_total", "Certificate reloads that failed (the old certificate stays)."),
		Sessions:         f.counterVec("sessions_total", "IMAP and POP3 sessions.", "protocol"),
		Commands:         f.counterVec("commands_total", "IMAP and POP3 commands.", "protocol", "command"),
		CommandErrors:    f.counterVec("command_errors_total", "IMAP and POP3 commands that failed.", "protocol", "command"),
		BytesSent:        f.counterVec("sent_bytes_total", "Message bytes sent to IMAP and POP3 clients.", "protocol"),
		QueueMessages:    f.gauge("queue_messages", "Messages waiting in the outbound queue."),
		QueueOldestAge:   f.gauge("queue_oldest_message_age_seconds", "Age of the oldest message in the outbound queue (0 when empty)."),
		DeliveryAttempts: f.counterVec("delivery_attempts_total", "Outbound delivery attempts per recipient, by result (delivered, deferred, failed, expired).", "result"),
		DSNs:             f.counter("dsns_total", "Delivery status notifications (bounces) sent to senders."),
		OutboundTLS:      f.counterVec("outbound_sessions_total", "Outgoing SMTP sessions by TLS (verified, unverified, none).", "tls"),
		InboundAuth:      f.counterVec("inbound_auth_results_total", "SPF, DKIM and DMARC results of mail arriving on the MX listener.", "method", "result"),
		Handoffs: f.counterVec("handoffs_total",
			"Recipients of mail handed to the replica that holds their mailbox, by result (delivered, queued, refused).", "result"),
		HandoffQueueMessages:  f.gauge("handoff_queue_messages", "Messages waiting in the handoff queue for another replica."),
		HandoffQueueOldestAge: f.gauge("handoff_queue_oldest_message_age_seconds", "Age of the oldest message in the handoff queue (0 when empty)."),
		HandoffAttempts: f.counterVec("handoff_attempts_total",
			"Handoff queue delivery attempts per recipient, by result (delivered, deferred, failed, expired).", "result"),
		ProxiedSessions: f.counterVec("proxied_sessions_total", "IMAP and POP3 logins served by the replica that holds the mailbox.", "protocol"),
	}
}

const namespace = "kubemail"

type factory struct{ r *prometheus.Registry }

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.r.MustRegister(g)
	return g
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	f.r.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.r.MustRegister(h)
	return h
}
