// Package conf is fxd's site configuration: the one TOML file
// (/etc/fxd/fxd.toml) an administrator writes.
//
// It owns the config types (Config and its sections), the defaults, the
// decoding and the validation. The defaults live in one place, default.toml,
// which is embedded (DefaultTOML, printed by `fxd config default`) and
// decoded by Default; Parse and Load decode a site file over them, so a site
// file only holds what it changes. Decoding refuses unknown keys (suggesting
// the nearest known one) and values of the wrong type; Validate checks the
// values. Both gather every problem at once, as *Problem errors naming the
// file, line and key and saying how to fix it, joined with errors.Join; each
// satisfies errors.Is(err, ErrInvalid).
//
// conf imports no fxd package (not even api): every other package may import
// it. Its ErrInvalid is its own kind, which the daemon maps to api.ErrInvalid.
package conf
