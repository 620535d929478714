package sieve

import "strings"

// The imap4flags internal variable holds the flags that keep and fileinto apply when they
// have no :flags of their own.

func splitFlags(list []string) []string {
	var out []string
	for _, s := range list {
		for _, f := range strings.Fields(s) {
			out = mergeFlags(out, []string{f})
		}
	}
	return out
}

// mergeFlags adds flags not already present; IMAP flag names compare without case.
func mergeFlags(into, add []string) []string {
	out := append([]string(nil), into...)
	for _, f := range add {
		found := false
		for _, g := range out {
			found = found || strings.EqualFold(f, g)
		}
		if !found {
			out = append(out, f)
		}
	}
	return out
}

func removeFlags(from, del []string) []string {
	var out []string
	for _, f := range from {
		keep := true
		for _, d := range del {
			keep = keep && !strings.EqualFold(f, d)
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}

func (r *run) flagsNow(explicit *argNode) []string {
	if explicit != nil {
		return splitFlags(r.expandList(explicit.Strs))
	}
	if !r.s.exts["imap4flags"] {
		return nil
	}
	return append([]string(nil), r.flags...)
}

func (r *run) actionFlags(a *resolved) []string {
	if f, ok := a.tags["flags"]; ok {
		return r.flagsNow(&f)
	}
	return r.flagsNow(nil)
}

func (r *run) flagCommand(name string, a *resolved) {
	list := a.pos[len(a.pos)-1]
	change := splitFlags(r.expandList(list.Strs))
	cur := r.flags
	varName := ""
	if len(a.pos) == 2 {
		varName = strings.ToLower(r.expand(a.pos[0].Strs[0]))
		cur = splitFlags([]string{r.vars[varName]})
	}
	switch name {
	case "setflag":
		cur = change
	case "addflag":
		cur = mergeFlags(cur, change)
	case "removeflag":
		cur = removeFlags(cur, change)
	}
	if varName != "" {
		r.vars[varName] = strings.Join(cur, " ")
		return
	}
	r.flags = cur
}

func (r *run) hasflagValues(t *testNode) []string {
	if len(t.pos) == 2 {
		var out []string
		for _, v := range r.expandList(t.pos[0].Strs) {
			out = append(out, splitFlags([]string{r.vars[strings.ToLower(v)]})...)
		}
		return out
	}
	return append([]string(nil), r.flags...)
}
