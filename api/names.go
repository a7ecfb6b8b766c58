package api

import "fmt"

// maxName is the longest function or image name.
const maxName = 64

// CheckName refuses a function or image name that is not 1-64 of a-z 0-9
// . _ - starting with a letter or digit (ErrInvalid); what names it in the
// message ("function name").
func CheckName(what, name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("%s %q: want 1-%d characters of a-z 0-9 . _ -, starting with a letter or digit: %w", what, name, maxName, ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%s %q: character %q at %d; use a-z 0-9 . _ - and start with a letter or digit: %w", what, name, c, i+1, ErrInvalid)
		}
	}
	return nil
}
