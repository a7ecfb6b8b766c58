// Package wire is the framing between the daemon and its workers, for both
// worker protocols. Every decoder takes the largest size the caller accepts
// and refuses a longer frame before allocating for it, so a hostile or
// broken peer cannot make the daemon allocate without bound.
//
// # Shim protocol (daemon ⇄ fxd-shim, command workers)
//
// Every frame is
//
//	type    1 byte   TypeRun (0x52 'R', daemon → shim) or TypeResult (0x72 'r', shim → daemon)
//	hlen    4 bytes  big-endian length of the header, at most MaxHeader
//	plen    4 bytes  big-endian length of the payload
//	header  hlen bytes of JSON: a Run or a Result
//	payload plen bytes: the task's stdin (Run) or its captured stdout (Result)
//
// The daemon sends one Run and waits for its Result before the next: the
// shim runs one task at a time.
//
// # Servable protocol (daemon ⇄ a servable function)
//
// Documented for users in docs/servable.md. A request is
//
//	type    1 byte   0x01 = task
//	length  4 bytes  big-endian N
//	input   N bytes
//
// and its response is
//
//	status  1 byte   0x00 ok (payload is the output), 0x01 error (payload is a message)
//	length  4 bytes  big-endian
//	payload length bytes
//
// One request is outstanding at a time.
//
// The package imports only api.
package wire
