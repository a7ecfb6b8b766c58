// Package cache is the node-local data cache: content-addressed blobs
// (sha256) that tasks read, an index of them in bbolt, a size cap kept by
// evicting the least recently used unpinned entries, pins that hold an
// entry while a task uses it, and per-tenant visibility. It is the core
// store only: staging from site paths, URLs and peers, and the API and
// CLI around it, are built on Put and Grant elsewhere.
//
// Put streams bytes into a private file in tmp/, hashing them on the way,
// flushes it to disk and only then, under the store's lock, renames it to
// its blob and writes the index entry: a put that fails, is cancelled or
// is killed leaves no visible entry. The same bytes are stored once, but
// an account reads an entry only once it has shown it has the bytes (its
// own put hashed to the digest) or the caller vouches that it proved
// access to the source (Grant); knowing a digest is not enough. To anyone
// else an entry does not exist: Get, Pin and Remove answer api.ErrNotFound
// the same way for a digest nobody stored and for one another account
// stored. Account "" is the admin, who sees every entry.
//
// It owns one directory (Config.Dir, <state_dir>/cache, mode 0700, owned
// by the user fxd runs as):
//
//	index.db              the index (bbolt, schema below)
//	blobs/sha256/<hex>    one file per digest, mode 0644 (the directories
//	                      above it are 0700, so only fxd reaches it)
//	tmp/                  private copies being received; emptied by Open
//
// Open makes the index and the files agree after a crash: it empties tmp/,
// drops entries whose blob is missing or of the wrong size (with a
// warning) and entries no account reads any more (a removal that waited
// for a pin), and removes blobs no entry names. Only one process may have
// the store open (the index's lock). Pins live in memory only: after a
// restart no task is running.
//
// It imports api and the shared helpers internal/boltfile and
// internal/units among fxd packages; it must not import daemon, runtimes,
// isolation, batch, federation or cmd.
//
// # Schema version 1
//
// The bucket tree (keys → values). A change to it changes schemaVersion and
// comes with a migration in Open; an fxd refuses an index with a newer
// schema than it knows.
//
//	meta
//	└── "schema"       → uint64 big-endian (1)
//	entries
//	└── "sha256:<hex>" → record as JSON (see below); the key is the
//	                     digest, so the key order is List's order
//
// A record:
//
//	{"size": 4243456,                        // bytes of blobs/sha256/<hex>
//	 "source": "/data/run42.h5",             // where the bytes were first staged from
//	 "added": "2025-01-02T03:04:05Z",        // when the blob was stored
//	 "last_used": "2025-01-02T04:00:00Z",    // last put or pin by anyone; eviction order
//	 "keep_until": "2025-01-09T04:00:00Z",   // optional: not evicted before (a task's output)
//	 "readers": {                            // accounts that may read it, each
//	   "alice": {"source": "/data/run42.h5", //   with where its copy came from,
//	             "added": "2025-01-02T03:04:05Z",      // when it was given it
//	             "last_used": "2025-01-02T04:00:00Z"}}} // and its own last put or pin
//
// A reader's last_used is optional: records written before it was kept
// lack it, and its added stands for it. An account is shown its own
// last use, never another's; the admin the record's.
//
// A record with no readers is an entry removed while pinned: it goes when
// the last pin is released, or at the next Open. Pins note their use in
// memory and the next write to the index (or Close) writes the last_used
// fields, so a pin costs no disk write; a crash loses only those notes.
// Quotas, usage and eviction scan the bucket: a node holds thousands of
// entries, not millions, and a reverse index would be one more thing to
// keep in step.
package cache
