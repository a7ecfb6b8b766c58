package isolation

import (
	"sync"
	"time"
)

// AccountCache looks accounts up with LookupAccount and reuses each
// answer, a refusal included, for its TTL: users and groups change
// rarely, and NSS over LDAP or SSSD is slow to ask for every task. Safe
// for concurrent use.
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
	c.mu.Lock()
	c.answers[k] = cachedAccount{acct: acct, err: err, at: time.Now()}
	c.mu.Unlock()
	return acct, err
}
