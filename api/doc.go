// Package api holds the wire types of the fxd facility endpoint, the error
// kinds shared by every package, and a small Go client used by the fx CLI and
// by federation.
//
// It imports no other fxd package.
package api
