package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/sendlimit"
	"github.com/kubemail/kubemail/mailserver/smtpd"
)

// ownerLimit counts each user's submissions on the replica that holds the user's mailbox, so
// that limits.maxMessagesPerHour holds for the cluster however a user's sessions spread over
// the replicas. The replica serving a session asks the owner; an owner that does not answer
// within a second (down, restarting) is counted for here instead, so the limit never keeps a
// user from sending because a replica is away.
type ownerLimit struct {
	local *sendlimit.Limiter
	shard int
	dir   *directory.Live
	http  *http.Client
	log   *slog.Logger
}

// sendLimiter is the submission limit of this replica's sessions: its own count alone, or in a
// cluster of several the owners' counts.
func (s *Server) sendLimiter() smtpd.SendLimiter {
	if s.cluster == nil || s.sendLimit == nil {
		return s.sendLimit
	}
	return &ownerLimit{local: s.sendLimit, shard: s.cfg.Shard, dir: &s.dir,
		http: s.peerClient(protoLimit, time.Second), log: s.log.With("component", "sendlimit")}
}

func (l *ownerLimit) Limit() int { return l.local.Limit() }

// elsewhere is the shard of user's mailbox when another replica holds it.
func (l *ownerLimit) elsewhere(user string) (int, bool) {
	mb, ok := l.dir.Load().Mailbox(user)
	if !ok || mb.Shard == l.shard {
		return 0, false
	}
	return mb.Shard, true
}

func (l *ownerLimit) Allow(user string) bool {
	shard, remote := l.elsewhere(user)
	if !remote {
		return l.local.Allow(user)
	}
	allowed, err := l.ask(http.MethodGet, shard, user)
	if err != nil {
		l.log.Warn("the mailbox's replica did not answer for the hourly limit; counted here", "user", user, "shard", shard, "err", err)
		return l.local.Allow(user)
	}
	return allowed
}

func (l *ownerLimit) Record(user string) {
	shard, remote := l.elsewhere(user)
	if !remote {
		l.local.Record(user)
		return
	}
	if _, err := l.ask(http.MethodPost, shard, user); err != nil {
		l.log.Warn("the mailbox's replica did not count a submission; counted here", "user", user, "shard", shard, "err", err)
		l.local.Record(user)
	}
}

// ask asks the replica of shard whether user may send (GET) or tells it the user sent (POST).
func (l *ownerLimit) ask(method string, shard int, user string) (bool, error) {
	u := fmt.Sprintf("http://shard-%d/v1/sendlimit?user=%s", shard, url.QueryEscape(user))
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return true, nil
	case http.StatusTooManyRequests:
		return false, nil
	}
	return false, errors.New(resp.Status)
}

// sendLimitHandler answers the other replicas for the users whose mailboxes live here:
// GET whether one may send another message, POST that one did.
func sendLimitHandler(local *sendlimit.Limiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		switch {
		case r.URL.Path != "/v1/sendlimit" || user == "":
			http.NotFound(w, r)
		case r.Method == http.MethodGet && !local.Allow(user):
			w.WriteHeader(http.StatusTooManyRequests)
		case r.Method == http.MethodGet:
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost:
			local.Record(user)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
}
