package daemon

import (
	"fmt"
	"regexp"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/isolation"
)

// accountCacheTTL bounds how long a resolved account is reused before NSS
// is asked again (users and groups change rarely; NSS over LDAP is slow).
const accountCacheTTL = time.Minute

// mapper turns identities into local accounts with the [[auth.map]] rules.
// It holds the whole [auth] policy, so SIGHUP swaps it in one step.
type mapper struct {
	rules        []mapRule
	minUID       uint32
	certIdentity string // conf.Auth.CertIdentity
	// lookup resolves an account name: through an isolation.AccountCache,
	// whose answers last accountCacheTTL.
	lookup func(name string, minUID uint32) (isolation.Account, error)
}

type mapRule struct {
	match   string
	re      *regexp.Regexp
	account string
}

func newMapper(a conf.Auth) (*mapper, error) {
	m := &mapper{minUID: a.MinUID, certIdentity: a.CertIdentity, lookup: isolation.NewAccountCache(accountCacheTTL).Lookup}
	for i, r := range a.Map {
		mr := mapRule{match: r.Match, account: r.Account}
		if r.Regex != "" {
			re, err := r.CompileRegex()
			if err != nil {
				return nil, fmt.Errorf("auth.map[%d].regex: %w", i, err)
			}
			mr.re = re
		}
		m.rules = append(m.rules, mr)
	}
	return m, nil
}

// MappedAccount applies the [[auth.map]] rules of a to identity as the
// daemon does and returns the account name the first matching rule gives,
// before that account is looked up. ok is false when no rule matches.
func MappedAccount(a conf.Auth, identity string) (account string, ok bool, err error) {
	m, err := newMapper(a)
	if err != nil {
		return "", false, err
	}
	account, ok = m.accountName(identity)
	return account, ok, nil
}

// accountName applies the rules: the first that matches names the account.
func (m *mapper) accountName(identity string) (string, bool) {
	for _, r := range m.rules {
		if r.re == nil {
			if r.match == identity {
				return r.account, true
			}
			continue
		}
		if sub := r.re.FindStringSubmatchIndex(identity); sub != nil {
			return string(r.re.ExpandString(nil, r.account, identity, sub)), true
		}
	}
	return "", false
}

// account maps identity to its local account, or says why it may not run.
func (m *mapper) account(identity string) (isolation.Account, error) {
	name, ok := m.accountName(identity)
	if !ok {
		return isolation.Account{}, fmt.Errorf("identity %q is not mapped to a local account; ask the site admin to add an [[auth.map]] rule: %w", identity, api.ErrDenied)
	}
	acct, err := m.lookup(name, m.minUID)
	if err != nil {
		return isolation.Account{}, fmt.Errorf("identity %q: %w", identity, err)
	}
	return acct, nil
}

// accountByName resolves an account named in a stored task or function
// (recovery after restart), with the same checks as for callers.
func (m *mapper) accountByName(name string) (isolation.Account, error) {
	return m.lookup(name, m.minUID)
}
