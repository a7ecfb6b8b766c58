// Package images is the runtime repository's image store: the SIF images
// that functions run in, kept by content address, named per site or per
// account, and mounted read-only for the containers that run them.
//
// AddFile (a user's file, opened with that user's permissions) and
// AddSiteFile (the admin's, opened as root) stream an image into a private
// copy, hashing it on the way, check it with runtimes/sif (Inspect, and
// Verify when the site requires signed images), mount its root file system
// once to refuse device nodes in it (a container could open a host device
// through one: crun drops the mount's nodev), and only then store it; a
// refused image leaves nothing behind. Names are "python" for a site image, which every account sees,
// and "alice/python" for account alice's own image, which only alice (and
// the admin) sees; to others it does not exist. Two names for the same
// bytes share one blob. Mount loop-mounts an image's squashfs root file
// system (ioctls on /dev/loop-control, no losetup or mount binaries) and
// shares the mount among callers until Close.
//
// It owns one directory (Config.Dir, mode 0700, owned by root):
//
//	images.db             the index (bbolt, schema below)
//	blobs/sha256/<hex>    one SIF file per digest, mode 0600
//	tmp/                  private copies being received and checked;
//	                      emptied by Open
//	mnt/<hex>             mount points of root file systems; what a
//	                      crashed run left mounted is unmounted by Open
//
// Open also makes the index and the blobs agree: a name whose blob is
// missing is dropped (with a warning), a blob no name uses is removed. A
// blob goes when its last name does, unless it is mounted: then Close (or
// the next Open) removes it.
//
// It imports api, isolation (for Account) and runtimes/sif among fxd
// packages; it must not import daemon, cmd, batch or federation.
//
// # Schema version 1
//
// The bucket tree (keys → values). A change to it changes schemaVersion and
// comes with a migration in Open; an fxd refuses an index with a newer
// schema than it knows.
//
//	meta
//	└── "schema"   → uint64 big-endian (1)
//	images
//	└── <ref>      → record as JSON (see below); ref is "<name>" for a site
//	                 image or "<owner>/<name>" for an account's, so the key
//	                 order is List's order
//
// A record:
//
//	{"owner": "alice",             // absent for site images
//	 "digest": "sha256:<64 hex>",  // the blob: blobs/sha256/<hex>
//	 "size": 4243456,              // bytes of the blob
//	 "arch": "amd64",
//	 "signers": ["<fingerprint>"], // absent unless signatures were required
//	 "source": "/home/alice/python.sif",
//	 "added": "2025-01-02T03:04:05Z",
//	 "rootfs_offset": 32768,       // the squashfs root file system's place
//	 "rootfs_size": 4210688}       // in the blob, for Mount
//
// Blobs are few (tens to hundreds), so whether a digest is still named is
// found by scanning images; there is no reverse index to keep in step.
package images
