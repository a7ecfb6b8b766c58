package conf

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
)

// decoder copies a decoded TOML tree (map[string]any from toml.Decode) onto
// a Config by its toml tags, one key at a time, so that every unknown key and
// every value of the wrong type is reported, not only the first. Unknown keys
// are found here rather than with toml's MetaData.Undecoded, as the tree is
// walked against the struct anyway.
type decoder struct {
	ps *problems
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func rvalue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }

// fields decodes the keys of table onto the struct rv.
func (d *decoder) fields(table map[string]any, rv reflect.Value, key string) {
	names := make([]string, 0, len(table))
	for name := range table {
		names = append(names, name)
	}
	slices.Sort(names)
	t := rv.Type()
	for _, name := range names {
		k := joinKey(key, []string{name})
		i := fieldIndex(t, name)
		if i < 0 {
			d.ps.add(k, "unknown key%s", suggest(key, name, tagNames(t)))
			continue
		}
		if from := t.Field(i).Tag.Get("defaults"); from != "" {
			d.sliceFrom(table[name], rv.Field(i), rv.FieldByName(from), k)
			continue
		}
		d.value(table[name], rv.Field(i), k)
	}
}

// value decodes one TOML value onto rv.
func (d *decoder) value(v any, rv reflect.Value, key string) {
	if rv.Addr().Type().Implements(textUnmarshaler) {
		d.text(v, rv, key)
		return
	}
	switch rv.Kind() {
	case reflect.Struct:
		table, ok := v.(map[string]any)
		if !ok {
			d.ps.add(key, "want a table, got %s; write it as a [%s] section", typeName(v), key)
			return
		}
		d.fields(table, rv, key)
	case reflect.Map:
		table, ok := v.(map[string]any)
		if !ok {
			d.ps.add(key, "want a table, got %s; write each entry as a [%s.NAME] section", typeName(v), key)
			return
		}
		d.mapOf(table, rv, key)
	case reflect.Slice:
		d.slice(v, rv, key)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.ps.add(key, "want a string, got %s; put the value in quotes", typeName(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.ps.add(key, "want a boolean, got %s; write true or false, without quotes", typeName(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			d.ps.add(key, "want a whole number, got %s; write it like 64, without quotes", typeName(v))
			return
		}
		if rv.OverflowInt(n) {
			d.ps.add(key, "%d is out of range; give a smaller number", n)
			return
		}
		rv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		if !ok {
			d.ps.add(key, "want a whole number, got %s; write it like 1000, without quotes", typeName(v))
			return
		}
		if n < 0 || rv.OverflowUint(uint64(n)) {
			d.ps.add(key, "%d is out of range; give a number from 0 to %d", n, uint64(1)<<rv.Type().Bits()-1)
			return
		}
		rv.SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		default:
			d.ps.add(key, "want a number, got %s; write it like 2.5, without quotes", typeName(v))
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.ps.add(key, "want a finite number, got %v", f)
			return
		}
		rv.SetFloat(f)
	default:
		panic(fmt.Sprintf("conf: field %s has unsupported type %s", key, rv.Type())) // programmer error
	}
}

// text decodes a string (or, for Size, a number of bytes) with the field's
// UnmarshalText.
func (d *decoder) text(v any, rv reflect.Value, key string) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int64:
		if _, isSize := rv.Addr().Interface().(*Size); !isSize {
			d.ps.add(key, "want a string, got %s; put the value in quotes, like %q", typeName(v), example(rv))
			return
		}
		s = fmt.Sprint(x)
	default:
		d.ps.add(key, "want a string, got %s; put the value in quotes, like %q", typeName(v), example(rv))
		return
	}
	if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
		d.ps.add(key, "%v", err)
	}
}

// example is a sample value of a text field for messages.
func example(rv reflect.Value) string {
	switch rv.Addr().Interface().(type) {
	case *Duration:
		return "30s"
	case *Size:
		return "10MiB"
	case *Mode:
		return "0660"
	}
	return "text"
}

// mapOf decodes [key.NAME] tables into the map rv; each entry starts from
// the zero value.
func (d *decoder) mapOf(table map[string]any, rv reflect.Value, key string) {
	if rv.Type().Key().Kind() != reflect.String {
		panic(fmt.Sprintf("conf: map %s needs string keys", key)) // programmer error
	}
	names := make([]string, 0, len(table))
	for name := range table {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if rv.IsNil() {
			rv.Set(reflect.MakeMap(rv.Type()))
		}
		e := reflect.New(rv.Type().Elem()).Elem()
		d.value(table[name], e, joinKey(key, []string{name}))
		rv.SetMapIndex(reflect.ValueOf(name).Convert(rv.Type().Key()), e)
	}
}

// slice decodes an array (of tables or of values) into rv, replacing what
// rv held: an array given in the file replaces the default one.
func (d *decoder) slice(v any, rv reflect.Value, key string) {
	d.sliceFrom(v, rv, reflect.Value{}, key)
}

// sliceFrom is slice with each entry starting as a copy of from, the
// sibling field a `defaults:"Field"` tag names (so [[batch.pool]] entries
// take what they leave out from [batch.defaults], which sorts, and so
// decodes, before them); the zero value when from is not valid.
func (d *decoder) sliceFrom(v any, rv, from reflect.Value, key string) {
	var items []any
	switch x := v.(type) {
	case []map[string]any:
		for _, m := range x {
			items = append(items, m)
		}
	case []any:
		items = x
	default:
		hint := "write it as [a, b]"
		if rv.Type().Elem().Kind() == reflect.Struct {
			hint = fmt.Sprintf("write each entry as a [[%s]] section", key)
		}
		d.ps.add(key, "want an array, got %s; %s", typeName(v), hint)
		return
	}
	s := reflect.MakeSlice(rv.Type(), len(items), len(items))
	for i, item := range items {
		if from.IsValid() {
			s.Index(i).Set(deepCopy(from))
		}
		d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
	}
	rv.Set(s)
}

// deepCopy copies v with its slices and maps, so that decoding onto the
// copy cannot change v.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if c.Field(i).CanSet() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return c
	}
	return v
}

// fieldIndex returns the index of the field of t tagged name, or -1.
func fieldIndex(t reflect.Type, name string) int {
	if name == "" || name == "-" {
		return -1
	}
	for i := range t.NumField() {
		if tagName(t.Field(i)) == name {
			return i
		}
	}
	return -1
}

func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

func tagNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if n := tagName(t.Field(i)); n != "" && n != "-" {
			names = append(names, n)
		}
	}
	return names
}

// typeName names the TOML type of a decoded value for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("a %T", v)
}
