// Package federation links fxd sites over mutual TLS, with no central
// service: each site has a key pair and a certificate that names it
// (CommonName and the URI SAN "fxd-site:<name>"), issued by a CA its
// peers trust, or pinned by fingerprint; a peer is known by its
// certificate, never by what it claims. This file set holds the PKI the
// admin tooling uses (fxd federation init, sign, show) and the TLS
// configurations of peer links; forwarding and routing come next.
//
// It imports only api and conf among fxd packages.
package federation
