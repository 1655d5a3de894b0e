package redact

import (
	"net/url"
	"strings"
)

// URLPlaceholder replaces the redacted parts of a URL; unlike Placeholder
// it needs no escaping in any part of one.
const URLPlaceholder = "REDACTED"

// URL redacts the parts of a URL a broker may use to carry a credential
// (a dashboard_url with a session token): the userinfo, every query value
// (keys stay; an item without "=" is replaced whole) and the fragment. Scheme, host and path stay, so the
// link still says where it goes:
//
//	https://user:pw@dash.example/i/1?token=abc&x#t=1 → https://REDACTED@dash.example/i/1?token=REDACTED&REDACTED#REDACTED
//
// Text that does not parse as a URL is replaced whole; "" stays "".
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return URLPlaceholder
	}
	if u.User != nil {
		u.User = url.User(URLPlaceholder)
	}
	if u.RawQuery != "" || u.ForceQuery {
		items := strings.Split(u.RawQuery, "&")
		for i, it := range items {
			if k, _, ok := strings.Cut(it, "="); ok {
				items[i] = k + "=" + URLPlaceholder
			} else if it != "" {
				items[i] = URLPlaceholder
			}
		}
		u.RawQuery = strings.Join(items, "&")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = URLPlaceholder, ""
	}
	if u.Opaque != "" {
		// mailto:x or a scheme without "//": nothing tells the parts apart.
		u.Opaque = URLPlaceholder
	}
	return u.String()
}
