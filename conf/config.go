package conf

import "regexp"

// Config is the whole site configuration, one TOML file (/etc/fxd/fxd.toml).
// Every field's default is in default.toml, which is embedded and is the one
// place defaults are defined.
type Config struct {
	Site       Site       `toml:"site"`
	Endpoint   Endpoint   `toml:"endpoint"`
	Auth       Auth       `toml:"auth"`
	Limits     Limits     `toml:"limits"`
	Tenants    Tenants    `toml:"tenants"`
	Workers    Workers    `toml:"workers"`
	Containers Containers `toml:"containers"`
	Cache      Cache      `toml:"cache"`
	Batch      Batch      `toml:"batch"`
	Federation Federation `toml:"federation"`
	Log        Log        `toml:"log"`

	// src is where the config was read from, so Validate can name the file
	// and line of each problem; nil for a config built in code.
	src *source
}

// Site names this installation and where it keeps its state.
type Site struct {
	Name     string `toml:"name"`      // e.g. "alcf"; [a-z0-9-]
	StateDir string `toml:"state_dir"` // task store, tokens, images, cache; created 0711
}

// Endpoint is where the facility endpoint listens.
type Endpoint struct {
	Listen     string `toml:"listen"`      // HTTPS "host:port"; "" disables HTTPS
	TLSCert    string `toml:"tls_cert"`    // PEM server certificate (required with listen)
	TLSKey     string `toml:"tls_key"`     // PEM key
	ClientCA   string `toml:"client_ca"`   // PEM CA bundle for client certificates; "" disables them
	Socket     string `toml:"socket"`      // unix socket path; "" disables it
	SocketMode Mode   `toml:"socket_mode"` // file mode of the socket, e.g. "0666"
	// DrainGrace is how long SIGTERM lets running tasks finish before they
	// are stopped and requeued.
	DrainGrace Duration `toml:"drain_grace"`
}

// Auth says how callers prove who they are and which local account each
// identity runs as.
type Auth struct {
	TokenFile string `toml:"token_file"` // "" = <state_dir>/tokens
	// CertIdentity picks the identity from a client certificate:
	// "common_name" (subject CN) or "subject" (the whole RFC 2253 DN).
	CertIdentity string `toml:"cert_identity"`
	// MinUID refuses accounts with a lower UID (system accounts); root (0)
	// is always refused.
	MinUID uint32 `toml:"min_uid"`
	// Map is tried in order; the first rule that matches an identity gives
	// its account. Unmatched identities are refused.
	Map []MapRule `toml:"map"`
}

// MapRule maps identities to an account. Exactly one of Match and Regex is
// set. Regex must match the whole identity (it is anchored at both ends).
// With Regex, Account may use capture groups ("$1", "${name}"). An Account
// of digits only names the account by UID.
type MapRule struct {
	Match   string `toml:"match"`
	Regex   string `toml:"regex"`
	Account string `toml:"account"`
}

// Limits bound requests and results.
type Limits struct {
	MaxInputBytes  Size `toml:"max_input_bytes"`
	MaxResultBytes Size `toml:"max_result_bytes"`
	// MaxCachedResultBytes bounds an output larger than MaxResultBytes,
	// which is kept in the data cache and returned as a ref; one not
	// above MaxResultBytes keeps no such output (the task fails).
	MaxCachedResultBytes Size     `toml:"max_cached_result_bytes"`
	MaxRequestBytes      Size     `toml:"max_request_bytes"` // whole HTTP body, batch included
	MaxBatch             int      `toml:"max_batch"`         // tasks in one submit
	ResultRetention      Duration `toml:"result_retention"`  // finished tasks are deleted after this
	DefaultTimeout       Duration `toml:"default_timeout"`   // per task, when the function sets none
	MaxTimeout           Duration `toml:"max_timeout"`
	MaxWait              Duration `toml:"max_wait"` // longest long-poll
}

// Tenants holds the default quota and per-account overrides.
type Tenants struct {
	Default Quota            `toml:"default"`
	Account map[string]Quota `toml:"account"` // [tenants.account.alice]; zero fields inherit Default
}

// Quota bounds one tenant (account).
type Quota struct {
	MaxRunning int     `toml:"max_running"` // tasks running at once
	MaxQueued  int     `toml:"max_queued"`  // tasks accepted but not finished
	MaxWorkers int     `toml:"max_workers"` // warm workers at once
	Memory     Size    `toml:"memory"`      // per worker cgroup
	CPUs       float64 `toml:"cpus"`        // per worker cgroup
	Pids       int64   `toml:"pids"`        // per worker cgroup
	// CacheBytes bounds the bytes of the data cache entries the account
	// can read, each counted in full even when it shares its bytes.
	CacheBytes Size `toml:"cache_bytes"`
}

// Workers configures warm workers on this node.
type Workers struct {
	IdleTimeout  Duration `toml:"idle_timeout"`  // a worker idle this long is stopped
	CgroupParent string   `toml:"cgroup_parent"` // cgroup under which worker cgroups are made
	Shim         string   `toml:"shim"`          // fxd-shim path; "" = next to fxd, then /usr/libexec/fxd
	// ServableRetry is whether a task in flight when its servable crashed
	// is retried once on a fresh worker (true) or fails at once (false).
	ServableRetry bool `toml:"servable_retry"`
}

// Containers configures SIF image runtimes: the OCI runtime that runs them,
// what every container gets, and the image repository
// (<state_dir>/images).
type Containers struct {
	// Runtime is the OCI runtime: "" finds crun, then runc, on PATH; a
	// name or absolute path picks one; "none" turns containers off.
	Runtime string `toml:"runtime"`
	Network string `toml:"network"`  // "host" or "none"
	WorkDir string `toml:"work_dir"` // container path of the private work dir
	TmpSize Size   `toml:"tmp_size"` // of /tmp and of the work dir, each
	// Bind lists the host directories mounted into every container.
	Bind []Bind `toml:"bind"`
	// MaxImageSize bounds one image added to the repository.
	MaxImageSize Size `toml:"max_image_size"`
	// UserImages lets users add images of their own, read from site paths
	// with their own permissions.
	UserImages bool `toml:"user_images"`
	// MaxUserImages bounds the images one account owns (0: no bound).
	MaxUserImages int `toml:"max_user_images"`
	// MaxUserImageBytes bounds the bytes of the images one account owns,
	// each counted in full even when it shares its bytes (0: no bound).
	MaxUserImageBytes Size `toml:"max_user_image_bytes"`
	// MinFreeSpace is the space an image add must leave free on the file
	// system of the state dir's images.
	MinFreeSpace Size `toml:"min_free_space"`
	// RequireSigned refuses images whose SIF signatures do not verify
	// against Keyring.
	RequireSigned bool   `toml:"require_signed"`
	Keyring       string `toml:"keyring"` // OpenPGP public keys, armored or binary
}

// Cache configures the node-local data cache (<state_dir>/cache): the
// datasets tasks name, staged once and shared.
type Cache struct {
	// MaxSize caps the bytes of all entries; the least recently used
	// entries no task holds are evicted to make room. 0 is no cap.
	MaxSize Size `toml:"max_size"`
	// MinFreeSpace is the space a stage must leave free on the file
	// system of the state dir.
	MinFreeSpace Size `toml:"min_free_space"`
	// MaxEntrySize bounds one staged file, upload or download.
	MaxEntrySize Size `toml:"max_entry_size"`
	// Paths are the site path prefixes users may stage files from, read
	// with their own permissions; none allows no path.
	Paths []string `toml:"paths"`
	// URLs are the http(s) URL prefixes users may stage from (and be
	// redirected to); none allows no URL. The daemon fetches them as
	// root, from the login node's network: list only data services.
	URLs []string `toml:"urls"`
	// URLTimeout bounds one URL download.
	URLTimeout Duration `toml:"url_timeout"`
}

// Bind mounts a host directory into every container. Source and
// Destination may use $USER and $HOME (the account's name and home).
type Bind struct {
	Source      string `toml:"source"`
	Destination string `toml:"destination"` // must exist in the images
	ReadOnly    bool   `toml:"read_only"`
}

// Log configures the daemon's log.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // auto (console on a TTY, else JSON), json, console
}

// QuotaFor returns the quota of account: its override's set fields over
// the default.
func (t Tenants) QuotaFor(account string) Quota {
	q := t.Default
	o, ok := t.Account[account]
	if !ok {
		return q
	}
	if o.MaxRunning != 0 {
		q.MaxRunning = o.MaxRunning
	}
	if o.MaxQueued != 0 {
		q.MaxQueued = o.MaxQueued
	}
	if o.MaxWorkers != 0 {
		q.MaxWorkers = o.MaxWorkers
	}
	if o.Memory != 0 {
		q.Memory = o.Memory
	}
	if o.CPUs != 0 {
		q.CPUs = o.CPUs
	}
	if o.Pids != 0 {
		q.Pids = o.Pids
	}
	if o.CacheBytes != 0 {
		q.CacheBytes = o.CacheBytes
	}
	return q
}

// CompileRegex compiles r.Regex anchored at both ends, so that it matches
// whole identities only: "alice@lab" must not admit "xalice@lab.evil".
// Group numbers and names are those of r.Regex.
func (r MapRule) CompileRegex() (*regexp.Regexp, error) {
	if _, err := regexp.Compile(r.Regex); err != nil {
		return nil, err // reported against the text the admin wrote
	}
	return regexp.Compile(`^(?:` + r.Regex + `)$`)
}

// Batch configures the pools of compute nodes fxd acquires through the
// site's batch scheduler, as pilot jobs ("blocks") that run `fxd node`.
type Batch struct {
	// PollInterval is how often the scheduler is asked about blocks.
	PollInterval Duration `toml:"poll_interval"`
	// NodeLease is how long a node whose link dropped keeps its tasks
	// before they are requeued and run elsewhere.
	NodeLease Duration `toml:"node_lease"`
	// DaemonNodeTasks lets the daemon's own node run tasks beside the
	// pools' nodes; false keeps them all on the pools' (a login node).
	DaemonNodeTasks bool `toml:"daemon_node_tasks"`
	// LocalityWait is how long a task that reads data waits for room on
	// a node that holds it before it goes to one that must fetch it.
	LocalityWait Duration `toml:"locality_wait"`
	// DaemonURL is the URL a block's agents dial; "" is https:// and this
	// host's name with endpoint.listen's port.
	DaemonURL string `toml:"daemon_url"`
	// DaemonCA is the PEM file of the CA a block's agents verify the
	// daemon's certificate with; "" is the system's roots.
	DaemonCA string `toml:"daemon_ca"`
	// NodeCommand starts the agent on each node of a block; empty is this
	// fxd binary with "node --config <this config file>".
	NodeCommand []string `toml:"node_command"`
	// Defaults holds the settings a [[batch.pool]] leaves out.
	Defaults Pool `toml:"defaults"`
	// Pool lists the pools; none means the daemon's own node only.
	Pool []Pool `toml:"pool" defaults:"Defaults"`
}

// Pool is one kind of block from one scheduler queue.
type Pool struct {
	Name     string `toml:"name"`     // [a-z0-9-], unique
	Provider string `toml:"provider"` // "local", "slurm" or "pbs"
	// Nodes and Walltime are a block's shape when the scheduler shows no
	// free window; a window that starts now reshapes it within MinNodes to
	// MaxNodes and MinWalltime to Walltime.
	Nodes       int      `toml:"nodes"`
	MinNodes    int      `toml:"min_nodes"`
	MaxNodes    int      `toml:"max_nodes"`
	Walltime    Duration `toml:"walltime"`
	MinWalltime Duration `toml:"min_walltime"`
	// MinBlocks are kept however idle, MaxBlocks never passed, InitBlocks
	// submitted at start.
	MinBlocks  int `toml:"min_blocks"`
	MaxBlocks  int `toml:"max_blocks"`
	InitBlocks int `toml:"init_blocks"`
	// IdleTimeout gives back a block whose nodes ran nothing for so long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// WorkerInit are shell lines each node runs before `fxd node`
	// ("module load apptainer").
	WorkerInit []string `toml:"worker_init"`
	// Options are extra scheduler options, passed as given
	// ("--constraint=haswell", "-W group_list=hpc").
	Options []string `toml:"options"`
	// LogDir is the directory where each block's job writes its output:
	// what its nodes' agents log. "" sends it nowhere.
	LogDir string    `toml:"log_dir"`
	Slurm  SlurmPool `toml:"slurm"`
	PBS    PBSPool   `toml:"pbs"`
}

// SlurmPool is where a slurm pool's blocks go.
type SlurmPool struct {
	Partition string `toml:"partition"` // "" is the cluster's default
	Account   string `toml:"account"`
	QoS       string `toml:"qos"`
}

// PBSPool is where a pbs pool's blocks go.
type PBSPool struct {
	Queue   string `toml:"queue"` // "" is the server's default
	Account string `toml:"account"`
}

// Federation links this site with peer sites over mutual TLS 1.3: users
// here run functions there through this endpoint, and peers' users run
// functions here as the accounts [[auth.map]] gives "user@peer".
type Federation struct {
	// Listen is the peer endpoint's address ("host:port"), where peers
	// forward tasks and read offers; "" accepts no peer, though this site
	// may still forward to peers that list it.
	Listen string `toml:"listen"`
	// Cert and Key are this site's PEM certificate (naming the site in a
	// "fxd-site:<name>" URI SAN, from fxd federation init and sign) and
	// its key, for both ends of every link; both or neither, required with
	// Listen or any Peer. They are re-read on SIGHUP.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// CA is a PEM bundle of federation CAs, for peers that give neither
	// ca nor fingerprint of their own.
	CA string `toml:"ca"`
	// RetryDeadline is how long after it was received a forwarded task is
	// retried while its peer cannot be reached; then it fails.
	RetryDeadline Duration `toml:"retry_deadline"`
	// PollWait is the longest a peer holds a status request open.
	PollWait Duration `toml:"poll_wait"`
	// OfferInterval is how often peers are asked what they offer
	// (functions, runtimes, capacity, cached data) and timed.
	OfferInterval Duration `toml:"offer_interval"`
	// Peer lists the sites this one links with.
	Peer []FederationPeer `toml:"peer"`
}

// FederationPeer is one peer site.
type FederationPeer struct {
	Name string `toml:"name"` // its site.name, as its certificate names it
	// URL is its peer endpoint ("https://host:port"); "" never dials it
	// (it may still forward here).
	URL string `toml:"url"`
	// CA is a PEM bundle that signs its certificate; Fingerprint pins the
	// certificate itself: its SHA-256 as fxd federation show prints it,
	// 64 hex digits in any case, maybe after "sha256:" and with colons
	// between byte pairs. At least one, or federation.ca.
	CA          string `toml:"ca"`
	Fingerprint string `toml:"fingerprint"`
	// Allow is what the peer may do here: "run" (forward tasks, which run
	// as the account [[auth.map]] gives "user@peer") and "discover" (read
	// this site's offers). Left out (nil) it allows both; empty ([]) it
	// allows nothing.
	Allow []string `toml:"allow"`
}
