package conf

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the text of the default config: every key with its
// default value and a comment. It is what `fxd config default` prints and
// the one place defaults are defined.
func DefaultTOML() []byte { return append([]byte(nil), defaultTOML...) }

// Default returns the default config, decoded from DefaultTOML.
func Default() *Config {
	c := &Config{}
	if err := decode(c, defaultTOML, "default.toml"); err != nil {
		panic(fmt.Sprintf("conf: embedded default.toml does not decode: %v", err)) // programmer error
	}
	c.src = nil // problems of a built config have no file line to point at
	return c
}

// Dev returns the default config adjusted for a developer run
// (`fxd serve --dev`): state in stateDir, the socket at stateDir/fxd.sock,
// workers under the cgroup "fxd-dev" (not the installed daemon's "fxd"),
// console logs on a terminal.
func Dev(stateDir string) *Config {
	c := Default()
	c.Site.StateDir = stateDir
	c.Endpoint.Socket = filepath.Join(stateDir, "fxd.sock")
	c.Workers.CgroupParent = "fxd-dev"
	c.Log.Format = "auto"
	return c
}

// Load reads and decodes the config file at path (see Parse). It does not
// validate the result: call Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		c.src.path = abs
	}
	return c, nil
}

// Parse decodes a TOML config over the defaults: keys the text leaves out
// keep their default values, except that an array such as [[auth.map]]
// given in the text replaces the whole default array. name is the file name
// used in problems. Syntax errors, unknown keys and values of the wrong type
// are all reported, joined, as *Problem errors that satisfy
// errors.Is(err, ErrInvalid). Parse does not validate values: call Validate.
func Parse(data []byte, name string) (*Config, error) {
	c := Default()
	if err := decode(c, data, name); err != nil {
		return nil, err
	}
	return c, nil
}

// decode decodes data onto c and records its source in c.
func decode(c *Config, data []byte, name string) error {
	src := &source{file: name}
	ps := &problems{src: src}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if !errors.As(err, &pe) {
			ps.add("", "%v; check the TOML syntax", err)
			return ps.err()
		}
		msg := pe.Message
		if pe.Usage != "" {
			msg += " (" + firstLine(pe.Usage) + ")"
		}
		ps.list = append(ps.list, &Problem{Line: pe.Position.Line, Msg: "TOML syntax: " + msg})
		return ps.err()
	}
	src.lines = keyLines(string(data))
	(&decoder{ps: ps}).fields(raw, rvalue(c), "")
	if err := ps.err(); err != nil {
		return err
	}
	c.src = src
	return nil
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
