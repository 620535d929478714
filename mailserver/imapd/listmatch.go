package imapd

import "strings"

// matchList reports whether a folder name matches a LIST reference and pattern (RFC 3501
// 6.3.8): "*" matches anything, "%" anything but the delimiter. The reference is a prefix the
// pattern continues, unless the pattern starts at the root with the delimiter.
func matchList(name string, delim byte, ref, pattern string) bool {
	if pattern != "" && pattern[0] == delim {
		ref, pattern = "", pattern[1:]
	}
	if ref != "" {
		if ref[len(ref)-1] != delim {
			ref += string(delim)
		}
		var ok bool
		if name, ok = strings.CutPrefix(name, ref); !ok {
			return false
		}
	}
	return matchWildcards(name, pattern, delim)
}

// matchWildcards matches in time proportional to len(name)*len(pattern), whatever the
// pattern: a client's "*%*%*%..." must not cost exponential time, as naive backtracking would.
// reach[j] says whether the pattern's first j bytes can match the name read so far.
func matchWildcards(name, pattern string, delim byte) bool {
	reach := make([]bool, len(pattern)+1)
	reach[0] = true
	// Wildcards match the empty string, so they extend what is reachable without input.
	spread := func() {
		for j := 0; j < len(pattern); j++ {
			if reach[j] && (pattern[j] == '*' || pattern[j] == '%') {
				reach[j+1] = true
			}
		}
	}
	spread()
	next := make([]bool, len(pattern)+1)
	for i := 0; i < len(name); i++ {
		c := name[i]
		clear(next)
		for j := 0; j < len(pattern); j++ {
			if !reach[j] {
				continue
			}
			switch p := pattern[j]; {
			case p == '*' || (p == '%' && c != delim):
				next[j] = true // the wildcard takes c and may take more
			case p == c:
				next[j+1] = true
			}
		}
		reach, next = next, reach
		spread()
	}
	return reach[len(pattern)]
}
