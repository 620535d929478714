package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

var dateParts = map[string]func(time.Time) string{
	"year":    func(t time.Time) string { return fmt.Sprintf("%04d", t.Year()) },
	"month":   func(t time.Time) string { return fmt.Sprintf("%02d", int(t.Month())) },
	"day":     func(t time.Time) string { return fmt.Sprintf("%02d", t.Day()) },
	"date":    func(t time.Time) string { return t.Format("2006-01-02") },
	"julian":  julian,
	"hour":    func(t time.Time) string { return fmt.Sprintf("%02d", t.Hour()) },
	"minute":  func(t time.Time) string { return fmt.Sprintf("%02d", t.Minute()) },
	"second":  func(t time.Time) string { return fmt.Sprintf("%02d", t.Second()) },
	"time":    func(t time.Time) string { return t.Format("15:04:05") },
	"iso8601": func(t time.Time) string { return t.Format("2006-01-02T15:04:05Z07:00") },
	"std11":   func(t time.Time) string { return t.Format("Mon, 02 Jan 2006 15:04:05 -0700") },
	"zone":    func(t time.Time) string { return t.Format("-0700") },
	"weekday": func(t time.Time) string { return fmt.Sprint(int(t.Weekday())) },
}

// julian is the Modified Julian Day of RFC 5260: days since 1858-11-17.
func julian(t time.Time) string {
	y, m, d := t.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	epoch := time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)
	return fmt.Sprint(int(day.Sub(epoch).Hours() / 24))
}

func checkDateTest(t *testNode) error {
	partArg := t.pos[len(t.pos)-2]
	p := strings.ToLower(partArg.Strs[0])
	if _, ok := dateParts[p]; !ok && !strings.Contains(p, "${") {
		return errorf(partArg.Pos, "date part %q is unknown; use one of year, month, day, date, julian, hour, minute, second, time, iso8601, std11, zone, weekday", partArg.Strs[0])
	}
	if z, ok := t.tags["zone"]; ok {
		if _, ok := parseZone(z.Strs[0]); !ok {
			return errorf(z.Pos, "zone %q is not of the form +hhmm or -hhmm", z.Strs[0])
		}
	}
	return nil
}

func parseZone(z string) (*time.Location, bool) {
	t, err := time.Parse("-0700", z)
	if err != nil {
		return nil, false
	}
	_, off := t.Zone()
	return time.FixedZone(z, off), true
}

// dateValues yields the one date part the test names, or nothing when the header holds
// no date: then the test is false, as RFC 5260 says.
func (r *run) dateValues(t *testNode) []string {
	when := r.now
	if t.Name == "date" {
		name := r.expand(t.pos[0].Strs[0])
		vals := r.indexed(t, r.msg.Header(name))
		if len(vals) == 0 {
			return nil
		}
		v := vals[0]
		if strings.EqualFold(name, "received") {
			if i := strings.LastIndexByte(v, ';'); i >= 0 {
				v = v[i+1:]
			}
		}
		d, err := mail.ParseDate(strings.TrimSpace(v))
		if err != nil {
			return nil
		}
		when = d
		if has(t, "originalzone") {
			return r.datePart(t, when)
		}
	}
	if z, ok := t.tags["zone"]; ok {
		loc, _ := parseZone(z.Strs[0])
		return r.datePart(t, when.In(loc))
	}
	return r.datePart(t, when.In(r.now.Location()))
}

func (r *run) datePart(t *testNode, when time.Time) []string {
	p := strings.ToLower(r.expand(t.pos[len(t.pos)-2].Strs[0]))
	f, ok := dateParts[p]
	if !ok {
		return nil
	}
	return []string{f(when)}
}
