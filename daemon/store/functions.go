package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// functionKey is owner\x00name; it checks both parts.
func functionKey(owner, name string) ([]byte, error) {
	switch {
	case owner == "" || name == "":
		return nil, fmt.Errorf("function %q of owner %q: owner and name must not be empty: %w", name, owner, api.ErrInvalid)
	case len(owner) > maxIDLen || len(name) > maxIDLen:
		return nil, fmt.Errorf("function %.32q of owner %.32q: owner and name must be at most %d bytes: %w", name, owner, maxIDLen, api.ErrInvalid)
	case strings.IndexByte(owner, 0) >= 0 || strings.IndexByte(name, 0) >= 0:
		return nil, fmt.Errorf("function %q of owner %q: NUL bytes are not allowed: %w", name, owner, api.ErrInvalid)
	}
	return []byte(owner + "\x00" + name), nil
}

// PutFunction stores f under (f.Owner, f.Name), replacing a function of
// that name. It sets Version to the last version given to that name plus
// one (1 for a new name; versions are not reused after a delete) and
// CreatedAt to now, and returns the function as stored.
func (s *Store) PutFunction(ctx context.Context, f api.Function) (api.Function, error) {
	key, err := functionKey(f.Owner, f.Name)
	if err != nil {
		return api.Function{}, fmt.Errorf("put function: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return api.Function{}, err
	}
	f.CreatedAt = time.Now().UTC().Round(0)
	err = s.db.Update(func(tx *bolt.Tx) error {
		versions, fns := tx.Bucket(bucketFnVersions), tx.Bucket(bucketFunctions)
		last := uint64(0)
		if v := versions.Get(key); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		if v := fns.Get(key); v != nil { // a file whose versions entry was lost
			var old api.Function
			if json.Unmarshal(v, &old) == nil && uint64(old.Version) > last {
				last = uint64(old.Version)
			}
		}
		f.Version = int(last + 1)
		b, err := json.Marshal(f)
		if err != nil {
			return fmt.Errorf("encode: %v: %w", err, api.ErrInvalid)
		}
		if err := versions.Put(key, binary.BigEndian.AppendUint64(nil, last+1)); err != nil {
			return err
		}
		return fns.Put(key, b)
	})
	if err != nil {
		return api.Function{}, fmt.Errorf("put function %s: %w", f.Ref(), err)
	}
	return f, nil
}

// GetFunction returns the function name of owner, or an error wrapping
// api.ErrNotFound.
func (s *Store) GetFunction(owner, name string) (api.Function, error) {
	key, err := functionKey(owner, name)
	if err != nil {
		return api.Function{}, fmt.Errorf("get function: %w", err)
	}
	var f api.Function
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFunctions).Get(key)
		if v == nil {
			return api.ErrNotFound
		}
		return json.Unmarshal(v, &f)
	})
	if err != nil {
		return api.Function{}, fmt.Errorf("get function %s/%s: %w", owner, name, err)
	}
	return f, nil
}

// ListFunctions returns the functions of owner, by name.
func (s *Store) ListFunctions(owner string) ([]api.Function, error) {
	if owner == "" || strings.IndexByte(owner, 0) >= 0 {
		return nil, fmt.Errorf("list functions of %q: owner must be non-empty, without NUL: %w", owner, api.ErrInvalid)
	}
	prefix := []byte(owner + "\x00")
	var fns []api.Function
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFunctions).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var f api.Function
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decode function %q: %w", k, err)
			}
			fns = append(fns, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list functions of %s: %w", owner, err)
	}
	return fns, nil
}

// SharedWith returns the functions of other owners whose SharedWith lists
// account, by owner then name. It scans every function.
func (s *Store) SharedWith(account string) ([]api.Function, error) {
	if account == "" {
		return nil, fmt.Errorf("list functions shared with an empty account: %w", api.ErrInvalid)
	}
	fns, err := s.scanFunctions([]byte(account), func(f api.Function) bool {
		return f.Owner != account && slices.Contains(f.SharedWith, account)
	})
	if err != nil {
		return nil, fmt.Errorf("list functions shared with %s: %w", account, err)
	}
	return fns, nil
}

// Federated returns the functions offered to the federation, by owner
// then name. It scans every function.
func (s *Store) Federated() ([]api.Function, error) {
	fns, err := s.scanFunctions([]byte(`"federated":true`), func(f api.Function) bool { return f.Federated })
	if err != nil {
		return nil, fmt.Errorf("list federated functions: %w", err)
	}
	return fns, nil
}

// scanFunctions returns, by owner then name, the functions keep keeps
// among those whose stored JSON holds needle (a cheap filter before
// decoding).
func (s *Store) scanFunctions(needle []byte, keep func(api.Function) bool) ([]api.Function, error) {
	var fns []api.Function
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFunctions).ForEach(func(k, v []byte) error {
			if !bytes.Contains(v, needle) {
				return nil
			}
			var f api.Function
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decode function %q: %w", k, err)
			}
			if keep(f) {
				fns = append(fns, f)
			}
			return nil
		})
	})
	return fns, err
}

// DeleteFunction removes the function name of owner, or returns an error
// wrapping api.ErrNotFound. Its version counter stays, so a later
// PutFunction of the same name gets a new version.
func (s *Store) DeleteFunction(ctx context.Context, owner, name string) error {
	key, err := functionKey(owner, name)
	if err != nil {
		return fmt.Errorf("delete function: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions)
		if b.Get(key) == nil {
			return api.ErrNotFound
		}
		return b.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete function %s/%s: %w", owner, name, err)
	}
	return nil
}
