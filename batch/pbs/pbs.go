package pbs

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/conf"
)

// Provider submits one pool's blocks to PBS Professional or OpenPBS. It
// holds no state of its own: the PBS server is the record, so a restarted
// daemon polls the jobs it submitted before. It is safe for concurrent
// use.
type Provider struct {
	c   conf.PBSPool
	log zerolog.Logger
}

// queueRE is a queue name, optionally at a server ("workq",
// "debug@pbs01"): PBS queue names are letters, digits, "-" and "_".
var queueRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*(@[A-Za-z0-9][A-Za-z0-9_.-]*)?$`)

// New returns the provider for blocks that go where c says. The PBS
// commands are found on PATH when they are run.
func New(c conf.PBSPool, log zerolog.Logger) (*Provider, error) {
	if c.Queue != "" && !queueRE.MatchString(c.Queue) {
		return nil, fmt.Errorf("pbs queue %q: %w: give a queue name as qstat -Q lists it", c.Queue, api.ErrInvalid)
	}
	// The account goes into a #PBS directive line, which qsub splits at
	// white space and unquotes.
	if strings.ContainsAny(c.Account, "'\"\\#") || !isPrint(c.Account) {
		return nil, fmt.Errorf("pbs account %q: %w: give one account name without spaces, quotes or control characters", c.Account, api.ErrInvalid)
	}
	return &Provider{c: c, log: log.With().Str("component", "batch.pbs").Logger()}, nil
}

// isPrint says whether s is printable ASCII without spaces.
func isPrint(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

var (
	_ batch.Provider     = (*Provider)(nil)
	_ batch.WindowFinder = (*Provider)(nil)
	_ batch.Finder       = (*Provider)(nil)
)
