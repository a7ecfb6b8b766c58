package isolation

import (
	"errors"
	"sync"
	"time"

	"fxd.dev/fxd/api"
)

// maxAccounts bounds the answers an AccountCache keeps.
const maxAccounts = 100000

// AccountCache looks accounts up with LookupAccount and reuses each
// answer, a refusal included (but not a failure of NSS itself), for its
// TTL: users and groups change rarely, and NSS over LDAP or SSSD is slow
// to ask for every task. Safe for concurrent use.
type AccountCache struct {
	ttl time.Duration

	mu      sync.Mutex
	answers map[accountKey]cachedAccount
}

type accountKey struct {
	name   string
	minUID uint32
}

type cachedAccount struct {
	acct Account
	err  error
	at   time.Time
}

// NewAccountCache returns a cache that keeps answers for ttl.
func NewAccountCache(ttl time.Duration) *AccountCache {
	return &AccountCache{ttl: ttl, answers: map[accountKey]cachedAccount{}}
}

// Lookup is LookupAccount(name, minUID), answered from the cache while
// the last answer is younger than the TTL.
func (c *AccountCache) Lookup(name string, minUID uint32) (Account, error) {
	k := accountKey{name, minUID}
	c.mu.Lock()
	a, ok := c.answers[k]
	c.mu.Unlock()
	if ok && time.Since(a.at) < c.ttl {
		return a.acct, a.err
	}
	acct, err := LookupAccount(name, minUID)
	if err != nil && !errors.Is(err, api.ErrDenied) {
		return acct, err // NSS failed (LDAP down): ask again next time
	}
	c.mu.Lock()
	if len(c.answers) >= maxAccounts { // forget all rather than grow without bound
		clear(c.answers)
	}
	c.answers[k] = cachedAccount{acct: acct, err: err, at: time.Now()}
	c.mu.Unlock()
	return acct, err
}
