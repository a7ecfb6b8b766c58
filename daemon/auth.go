package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"fxd.dev/fxd/api"
)

type ctxKey int

const peerUIDKey ctxKey = iota

// connContext remembers the peer's UID of a unix-socket connection
// (SO_PEERCRED), read once per connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerUIDKey, cred.Uid)
}

// localIdentityPrefix starts the identities of unix socket callers, known
// by their UID from the kernel (SO_PEERCRED), and of nobody else.
const localIdentityPrefix = "uid:"

// remoteIdentity refuses a token or certificate identity that looks like
// a local caller's: the default rule maps "uid:N" to local UID N, so such
// a credential would act as that user from afar.
func remoteIdentity(id, from string) (string, error) {
	if strings.HasPrefix(id, localIdentityPrefix) {
		return "", fmt.Errorf("%s identity %q: %q identities are reserved for local callers on the unix socket; issue the credential for another name: %w", from, id, localIdentityPrefix, api.ErrDenied)
	}
	return id, nil
}

// identityOf says who sent r: a bearer token's identity, else the TLS
// client certificate's subject, else the unix peer's "uid:N".
func (d *Daemon) identityOf(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return "", fmt.Errorf("authorization header: want \"Bearer <token>\": %w", api.ErrUnauthenticated)
		}
		id := d.tokens.identity(strings.TrimSpace(tok))
		if id == "" {
			return "", fmt.Errorf("unknown or revoked token; ask the site admin for a new one (fxd token issue): %w", api.ErrUnauthenticated)
		}
		return remoteIdentity(id, "token")
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		if d.mapper().certIdentity == "subject" {
			return remoteIdentity(cert.Subject.String(), "client certificate")
		}
		if cert.Subject.CommonName == "" {
			return "", fmt.Errorf("client certificate has no common name; set auth.cert_identity = \"subject\" or reissue it: %w", api.ErrUnauthenticated)
		}
		return remoteIdentity(cert.Subject.CommonName, "client certificate")
	}
	if uid, ok := r.Context().Value(peerUIDKey).(uint32); ok {
		return localIdentityPrefix + strconv.FormatUint(uint64(uid), 10), nil
	}
	return "", fmt.Errorf("no credential; send \"Authorization: Bearer <token>\" or a client certificate: %w", api.ErrUnauthenticated)
}

// authenticate maps the request's identity to its local account.
func (d *Daemon) authenticate(r *http.Request) (caller, error) {
	id, err := d.identityOf(r)
	if err != nil {
		return caller{}, err
	}
	acct, err := d.mapper().account(id)
	if err != nil {
		return caller{}, err
	}
	return caller{identity: id, acct: acct}, nil
}
