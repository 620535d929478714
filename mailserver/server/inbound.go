package server

import (
	"context"
	"net"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/mailauth"
	"github.com/kubemail/kubemail/mailserver/smtpd"
)

// inboundChecks runs SPF, DKIM and DMARC for the MX listener.
type inboundChecks struct {
	s *Server
	c *mailauth.Checker
}

func (s *Server) newInboundChecks() smtpd.InboundChecker {
	if !s.cfg.Inbound.ChecksEnabled() {
		return nil
	}
	return inboundChecks{s: s, c: &mailauth.Checker{Resolver: s.resolver, Hostname: s.cfg.Hostname,
		RejectDMARC: s.cfg.Inbound.RejectDMARC(), Timeout: s.cfg.Inbound.DNSBudget.Duration}}
}

func (i inboundChecks) Check(ctx context.Context, in smtpd.CheckInput) ([]byte, error) {
	var ip net.IP
	if in.IP.IsValid() {
		ip = net.IP(in.IP.Unmap().AsSlice())
	}
	v := i.c.Check(ctx, mailauth.Input{IP: ip, Helo: in.Helo, MailFrom: in.MailFrom, Message: in.Message})
	m := i.s.metrics.InboundAuth
	m.WithLabelValues("spf", v.SPF).Inc()
	for _, d := range v.DKIM {
		m.WithLabelValues("dkim", d).Inc()
	}
	m.WithLabelValues("dmarc", v.DMARC).Inc()
	if v.OutOfTime {
		i.s.log.Info("DNS lookups of the inbound checks ran out of time; results are temporary errors",
			"from", in.MailFrom, "ip", in.IP.String(), "results", v.Summary())
	}
	if v.Reject {
		i.s.log.Info("message refused by the sender domain's DMARC policy", "from", in.MailFrom,
			"fromDomain", v.FromDomain, "ip", in.IP.String(), "results", v.Summary())
		return nil, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Message refused: it fails the DMARC policy (p=reject) of " + v.FromDomain}
	}
	return append([]byte(v.Field), mailauth.StripForged(in.Message, i.s.cfg.Hostname)...), nil
}
