package queue

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
)

// composeDSN builds a delivery status notification (RFC 3464 multipart/report) telling the
// sender of m that the failed recipients will not get it. The original header section is
// returned (text/rfc822-headers), not the body.
func composeDSN(hostname string, m *Message, failed []Recipient, data []byte, expired bool) []byte {
	now := time.Now()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)

	// Part 1: what a person reads.
	var text strings.Builder
	fmt.Fprintf(&text, "This is the mail system at %s.\r\n\r\n", hostname)
	if expired {
		fmt.Fprintf(&text, "Your message could not be delivered to the recipients below within %s;\r\n"+
			"this server has stopped trying.\r\n\r\n", roundAge(now.Sub(m.Queued)))
	} else {
		text.WriteString("Your message could not be delivered to the recipients below.\r\n\r\n")
	}
	for _, r := range failed {
		fmt.Fprintf(&text, "<%s>: %s\r\n", r.Address, r.LastResult)
		switch {
		case r.RemoteMTA != "" && r.result != nil && r.result.TLS != "":
			fmt.Fprintf(&text, "    (answered by %s, TLS %s)\r\n", r.RemoteMTA, r.result.TLS)
		case r.RemoteMTA != "":
			fmt.Fprintf(&text, "    (answered by %s)\r\n", r.RemoteMTA)
		}
	}
	text.WriteString("\r\nThe header of your message is attached.\r\n")
	pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {contentEncoding(text.String())}})
	pw.Write([]byte(text.String()))

	// Part 2: the machine-readable report.
	var st strings.Builder
	fmt.Fprintf(&st, "Reporting-MTA: dns; %s\r\n", hostname)
	fmt.Fprintf(&st, "X-Kubemail-Queue-ID: %s\r\n", m.ID)
	fmt.Fprintf(&st, "Arrival-Date: %s\r\n", m.Queued.Format(time.RFC1123Z))
	for _, r := range failed {
		st.WriteString("\r\n")
		fmt.Fprintf(&st, "Final-Recipient: %s\r\n", addressType(r.Address))
		st.WriteString("Action: failed\r\n")
		fmt.Fprintf(&st, "Status: %s\r\n", dsnStatus(r, expired))
		if r.RemoteMTA != "" {
			fmt.Fprintf(&st, "Remote-MTA: dns; %s\r\n", r.RemoteMTA)
		}
		if r.result != nil && r.result.Code > 0 {
			fmt.Fprintf(&st, "Diagnostic-Code: smtp; %s\r\n", r.LastResult)
		} else if r.LastResult != "" {
			fmt.Fprintf(&st, "Diagnostic-Code: X-Kubemail; %s\r\n", r.LastResult)
		}
		if !r.Updated.IsZero() {
			fmt.Fprintf(&st, "Last-Attempt-Date: %s\r\n", r.Updated.Format(time.RFC1123Z))
		}
		if expired {
			fmt.Fprintf(&st, "Will-Retry-Until: %s\r\n", now.Format(time.RFC1123Z))
		}
	}
	// An internationalised address is written in UTF-8 ("utf-8; jörg@bücher.example"), which
	// only the global report types carry (RFC 6533 section 6), as Postfix does.
	statusType, headerType := "message/delivery-status", "text/rfc822-headers"
	if contentEncoding(st.String()) == "8bit" {
		statusType = "message/global-delivery-status"
	}
	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {statusType},
		"Content-Transfer-Encoding": {contentEncoding(st.String())}})
	pw.Write([]byte(st.String()))

	// Part 3: the original header.
	hdr := headerSection(data)
	if contentEncoding(string(hdr)) == "8bit" {
		headerType = "message/global-headers"
	}
	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {headerType},
		"Content-Transfer-Encoding": {contentEncoding(string(hdr))}})
	pw.Write(hdr)
	mw.Close()

	var out bytes.Buffer
	fmt.Fprintf(&out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", hostname)
	fmt.Fprintf(&out, "To: <%s>\r\n", m.From)
	fmt.Fprintf(&out, "Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&out, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&out, "Message-ID: <%s.dsn.%d@%s>\r\n", m.ID, now.UnixNano(), hostname)
	out.WriteString("Auto-Submitted: auto-replied\r\n")
	out.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", mw.Boundary())
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes()
}

// dsnStatus is the recipient's enhanced status code; a given-up message whose last answer
// was temporary keeps that code, as other MTAs do, or reports 4.4.7 (delivery time expired).
func dsnStatus(r Recipient, expired bool) string {
	if r.result != nil && r.result.Status != "" {
		return r.result.Status
	}
	if expired {
		return "4.4.7"
	}
	return "5.0.0"
}

func addressType(addr string) string {
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			return "utf-8; " + addr
		}
	}
	return "rfc822; " + addr
}

func contentEncoding(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return "8bit"
		}
	}
	return "7bit"
}

func roundAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return d.Round(time.Second).String()
	}
}
