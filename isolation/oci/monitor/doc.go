// Package monitor is the container monitor that isolation/oci starts for
// each container, as "fxd-shim monitor": the parent of the container's
// first process, which reports its exit. It lives apart from oci so that
// fxd-shim, started for every worker and mounted into every container,
// links nothing but the standard library and x/sys.
//
// It imports no fxd package.
package monitor
