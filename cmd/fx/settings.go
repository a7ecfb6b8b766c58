package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"fxd.dev/fxd/api"
)

// globals are the settings every subcommand takes as flags.
type globals struct {
	endpoint, token, ca, cert, key string
	json                           bool
}

var globalFlags = []string{"endpoint", "token", "ca", "cert", "key", "json"}

func isGlobal(name string) bool { return slices.Contains(globalFlags, name) }

// register adds the global flags to fs; values already set (before the
// subcommand) stay unless given again.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoint, "endpoint", g.endpoint, "endpoint: unix:///path/fxd.sock or https://host:port (FX_ENDPOINT)")
	fs.StringVar(&g.token, "token", g.token, "bearer `token` (FX_TOKEN)")
	fs.StringVar(&g.ca, "ca", g.ca, "PEM CA bundle `file` for an https endpoint (FX_CA)")
	fs.StringVar(&g.cert, "cert", g.cert, "PEM client certificate `file` (FX_CERT)")
	fs.StringVar(&g.key, "key", g.key, "PEM client key `file` (FX_KEY)")
	fs.BoolVar(&g.json, "json", g.json, "print the API's JSON")
}

// fileConfig is ~/.config/fx/config.toml.
type fileConfig struct {
	Endpoint string `toml:"endpoint"`
	Token    string `toml:"token"`
	CA       string `toml:"ca"`
	Cert     string `toml:"cert"`
	Key      string `toml:"key"`
}

// settings are the resolved endpoint and client options.
type settings struct {
	endpoint string
	opts     api.ClientOptions
}

// configPath returns where the config file is, or "" with no home.
func (c *cli) configPath() string {
	dir := c.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := c.getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "fx", "config.toml")
}

// loadConfig reads the config file; a missing one is an empty config.
// Relative file names in it are relative to its directory.
func loadConfig(path string) (fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return fc, nil
	}
	md, err := toml.DecodeFile(path, &fc)
	if errors.Is(err, fs.ErrNotExist) {
		return fileConfig{}, nil
	}
	var perr toml.ParseError
	if errors.As(err, &perr) {
		return fc, usageError("config %s:%d: %s; fix the file or remove it", path, perr.Position.Line, perr.Message)
	}
	if err != nil {
		return fc, usageError("read config %s: %v", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		return fc, usageError("config %s: unknown keys %s; the keys are endpoint, token, ca, cert and key", path, strings.Join(keys, ", "))
	}
	for _, p := range []*string{&fc.CA, &fc.Cert, &fc.Key} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	return fc, nil
}

// resolve takes each setting from its flag, its environment variable, the
// config file, then the default.
func (c *cli) resolve(g *globals) (settings, error) {
	fc, err := loadConfig(c.configPath())
	if err != nil {
		return settings{}, err
	}
	pick := func(flagV, env, fileV, def string) string {
		for _, v := range []string{flagV, c.getenv(env), fileV} {
			if v != "" {
				return v
			}
		}
		return def
	}
	return settings{
		endpoint: pick(g.endpoint, "FX_ENDPOINT", fc.Endpoint, api.DefaultEndpoint),
		opts: api.ClientOptions{
			Token:    pick(g.token, "FX_TOKEN", fc.Token, ""),
			CAFile:   pick(g.ca, "FX_CA", fc.CA, ""),
			CertFile: pick(g.cert, "FX_CERT", fc.Cert, ""),
			KeyFile:  pick(g.key, "FX_KEY", fc.Key, ""),
		},
	}, nil
}

// client returns a client for the resolved settings; a bad setting is a
// usage error.
func (c *cli) client(g *globals) (*api.Client, error) {
	s, err := c.resolve(g)
	if err != nil {
		return nil, err
	}
	cl, err := api.NewClient(s.endpoint, s.opts)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("endpoint settings: %w", err)}
	}
	return cl, nil
}
